package frontend

import (
	"context"
	"log/slog"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/rs/zerolog"
)

// sipgoLog bridges sipgo's slog output into zerolog. sipgo logs a malformed message at Error with
// the whole payload; the bridge counts it as a parse error and logs at most a few such lines per
// second, truncated. Everything else sipgo says below Warn is dropped unless trace is on.
type sipgoLog struct {
	next    slog.Handler
	sampled slog.Handler
	trace   bool
	onParse func()
}

// newSipgoLogger returns the slog.Logger to give sipgo for one listener set.
func newSipgoLogger(zl zerolog.Logger, trace bool, onParseError func()) *slog.Logger {
	sampled := zl.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Second})
	return slog.New(&sipgoLog{
		next:    zerolog.NewSlogHandler(zl),
		sampled: zerolog.NewSlogHandler(sampled),
		trace:   trace,
		onParse: onParseError,
	})
}

func (h *sipgoLog) Enabled(_ context.Context, l slog.Level) bool {
	return h.trace || l >= slog.LevelWarn
}

func (h *sipgoLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "failed to parse" {
		if h.onParse != nil {
			h.onParse()
		}
		out := slog.NewRecord(r.Time, slog.LevelWarn, "malformed SIP message dropped", r.PC)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "data" {
				s := a.Value.String()
				if len(s) > 200 {
					s = s[:200] + "..."
				}
				a = slog.String("data", s)
			}
			out.AddAttrs(a)
			return true
		})
		return h.sampled.Handle(ctx, out)
	}
	if h.trace {
		return h.next.Handle(ctx, r)
	}
	return h.sampled.Handle(ctx, r)
}

func (h *sipgoLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &sipgoLog{next: h.next.WithAttrs(as), sampled: h.sampled.WithAttrs(as), trace: h.trace, onParse: h.onParse}
}

func (h *sipgoLog) WithGroup(name string) slog.Handler {
	return &sipgoLog{next: h.next.WithGroup(name), sampled: h.sampled.WithGroup(name), trace: h.trace, onParse: h.onParse}
}

// SetSipgoDefaultLogger routes what sipgo logs outside any listener (connection bookkeeping of
// its own) through the same bridge. sipgo wants it called before it is first used.
func SetSipgoDefaultLogger(zl zerolog.Logger, trace bool) {
	sip.SetDefaultLogger(newSipgoLogger(zl.With().Str("component", "sipgo").Logger(), trace, nil))
}
