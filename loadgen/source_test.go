package loadgen

import (
	"net/netip"
	"testing"
)

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct {
		i    int
		want string
	}{
		{0, "127.1.0.1"}, {999, "127.1.0.1"}, {1000, "127.1.0.2"}, {253999, "127.1.0.254"}, {254000, "127.1.1.1"}, {159999, "127.1.0.160"},
	} {
		if got := sourceOf(tc.i); got != netip.MustParseAddr(tc.want) {
			t.Errorf("client %d: %s, want %s", tc.i, got, tc.want)
		}
	}
}
