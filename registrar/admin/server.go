package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Server is the admin HTTP server.
type Server struct {
	backend Backend
	token   string
	log     zerolog.Logger
	http    *http.Server
	ln      net.Listener
	// ending is cancelled by Shutdown, ending event streams that would otherwise hold it.
	ending context.CancelFunc
}

// NewServer returns a server for backend that requires token on /api routes.
func NewServer(backend Backend, token string, log zerolog.Logger) *Server {
	s := &Server{backend: backend, token: token, log: log.With().Str("component", "admin").Logger()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.Handle("GET /metrics", backend.MetricsHandler())
	api := func(pattern string, h func(w http.ResponseWriter, r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, s.authed(h))
	}
	api("GET /api/v1/topology", func(http.ResponseWriter, *http.Request) (any, error) { return backend.Topology(), nil })
	api("GET /api/v1/frontends", func(http.ResponseWriter, *http.Request) (any, error) { return backend.FrontEnds(), nil })
	api("GET /api/v1/frontends/{fqdn}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		for _, fe := range backend.FrontEnds() {
			if strings.EqualFold(fe.FQDN, r.PathValue("fqdn")) {
				return fe, nil
			}
		}
		return nil, fmt.Errorf("%w: no Front End %q", ErrNotFound, r.PathValue("fqdn"))
	})
	api("POST /api/v1/frontends/{fqdn}/{action}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return backend.FrontEndAction(r.PathValue("fqdn"), r.PathValue("action"))
	})
	api("GET /api/v1/pools", func(http.ResponseWriter, *http.Request) (any, error) { return backend.Pools(), nil })
	api("GET /api/v1/pools/{fqdn}/fabric", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		verbose, err := boolParam(r, "verbose")
		if err != nil {
			return nil, err
		}
		return backend.FabricState(r.PathValue("fqdn"), verbose)
	})
	api("POST /api/v1/pools/{fqdn}/reset", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		var req ResetRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return backend.ResetRegistrarState(r.PathValue("fqdn"), req)
	})
	api("GET /api/v1/users/{identity}/poolinfo", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return backend.UserPoolInfo(r.PathValue("identity"))
	})
	api("GET /api/v1/users/{identity}/registrations", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return backend.Registrations(r.PathValue("identity"))
	})
	api("POST /api/v1/pools/{fqdn}/actions/{action}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return backend.PoolAction(r.PathValue("fqdn"), r.PathValue("action"))
	})
	api("POST /api/v1/pools/{fqdn}/failover", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		var req FailOverRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return backend.FailOver(r.PathValue("fqdn"), req)
	})
	api("POST /api/v1/pools/{fqdn}/failback", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		var req FailBackRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return backend.FailBack(r.PathValue("fqdn"), req)
	})
	api("GET /api/v1/pools/{fqdn}/backup-relationship", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return backend.BackupRelationship(r.PathValue("fqdn"))
	})
	api("GET /api/v1/pools/{fqdn}/upgrade-readiness", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return backend.UpgradeReadiness(r.PathValue("fqdn"))
	})
	api("GET /api/v1/users/{identity}/contacts", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return backend.Contacts(r.PathValue("identity"))
	})
	mux.HandleFunc("GET /api/v1/events", s.authed(s.events))
	// Go profiles of the emulator itself, behind the token (curl -H "Authorization: Bearer T").
	mux.HandleFunc("GET /debug/pprof/", s.authedRaw(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/profile", s.authedRaw(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/trace", s.authedRaw(pprof.Trace))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s (see `fepool ctl --help`)", r.Method, r.URL.Path))
	})
	base, ending := context.WithCancel(context.Background())
	s.ending = ending
	// Bounded reads: a client trickling its headers or body (slowloris) is cut off. No write
	// timeout: an event stream (?follow=true) and a CPU profile write for as long as asked.
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	return s
}

// Listen binds addr (host:port, port 0 allowed) without serving yet.
func (s *Server) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	s.ln = ln
	return ln.Addr(), nil
}

// Serve serves until Shutdown.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and ends open requests (event streams included) within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ending()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.http.Close()
	}
	return err
}

// allowed checks the bearer token, answering 401 when it is wrong.
func (s *Server) allowed(w http.ResponseWriter, r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fepool"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (printed by `fepool serve` at start, or FEPOOL_ADMIN_TOKEN)")
		return false
	}
	return true
}

func (s *Server) authedRaw(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.allowed(w, r) {
			h(w, r)
		}
	}
}

func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.allowed(w, r) {
			return
		}
		v, err := h(w, r)
		if err != nil {
			code := http.StatusInternalServerError
			switch {
			case errors.Is(err, ErrNotFound):
				code = http.StatusNotFound
			case errors.Is(err, ErrBadRequest):
				code = http.StatusBadRequest
			case errors.Is(err, ErrConflict):
				code = http.StatusConflict
			}
			if code == http.StatusInternalServerError {
				s.log.Error().Err(err).Str("path", r.URL.Path).Msg("admin request failed")
			}
			writeError(w, code, err.Error())
			return
		}
		if v != nil {
			writeJSON(w, http.StatusOK, v)
		}
	}
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	h := s.backend.Health()
	code := http.StatusOK
	if !h.OK {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

// events returns retained events after ?since=N; with ?follow=true it then streams new ones as
// JSON lines until the client goes away or the server shuts down.
func (s *Server) events(w http.ResponseWriter, r *http.Request) (any, error) {
	var since uint64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: since=%q is not a sequence number", ErrBadRequest, v)
		}
		since = n
	}
	follow, err := boolParam(r, "follow")
	if err != nil {
		return nil, err
	}
	log := s.backend.Events()
	if !follow {
		ev := log.Since(since)
		if ev == nil {
			return []any{}, nil
		}
		return ev, nil
	}
	f := log.Follow(1024)
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	last := since
	for _, e := range log.Since(since) {
		_ = enc.Encode(e)
		last = e.Seq
	}
	if flusher != nil {
		flusher.Flush()
	}
	for {
		select {
		case e := <-f.C():
			if e.Seq <= last {
				continue
			}
			if err := enc.Encode(e); err != nil {
				return nil, nil
			}
			last = e.Seq
			if flusher != nil {
				flusher.Flush()
			}
		case <-r.Context().Done():
			return nil, nil
		}
	}
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: %s=%q is not true or false", ErrBadRequest, name, v)
	}
	return b, nil
}

func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: reading body: %v", ErrBadRequest, err)
	}
	if len(body) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body is not valid JSON for this request: %v", ErrBadRequest, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorBody{Error: msg})
}
