package record

import (
	"encoding/json"
	"strconv"
)

// appendEvent appends e as one JSON line, byte for byte what json.Encoder writes for it (a fuzz
// test checks it): events are nearly all a run records, tens of thousands a second in a ramp,
// and encoding/json's reflection was most of the recorder's cost.
func appendEvent(b []byte, e *Event) []byte {
	b = append(b, `{"kind":`...)
	b = appendString(b, e.Kind)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, e.T, 10)
	if e.Lag != 0 {
		b = append(b, `,"lag":`...)
		b = strconv.AppendInt(b, e.Lag, 10)
	}
	b = append(b, `,"c":`...)
	b = strconv.AppendInt(b, int64(e.C), 10)
	b = append(b, `,"e":`...)
	b = appendString(b, e.E)
	if e.Code != 0 {
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(e.Code), 10)
	}
	if e.RTT != 0 {
		b = append(b, `,"rtt":`...)
		b = strconv.AppendInt(b, e.RTT, 10)
	}
	if e.Mode != "" {
		b = append(b, `,"mode":`...)
		b = appendString(b, e.Mode)
	}
	if e.Server != "" {
		b = append(b, `,"srv":`...)
		b = appendString(b, e.Server)
	}
	if e.Refresh {
		b = append(b, `,"refresh":true`...)
	}
	if e.Final {
		b = append(b, `,"final":true`...)
	}
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, e.Reason)
	}
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string as json.Encoder does (HTML-escaped, invalid UTF-8
// replaced): plain printable ASCII directly, anything else through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
