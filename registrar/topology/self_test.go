package topology

import "testing"

func TestNamesEmulator(t *testing.T) {
	top := Default()
	for host, want := range map[string]bool{
		"contoso.com":             true,
		"Contoso.COM":             true,
		"pool-a.contoso.com":      true,
		"fe02.pool-b.contoso.com": true,
		"127.0.1.1":               true, // fe01.pool-a
		"127.0.1.100":             true, // pool-a's front door
		"[::ffff:127.0.2.3]":      true, // fe03.pool-b, IPv4-mapped
		"127.0.0.1":               false,
		"127.0.1.99":              false,
		"fabrikam.com":            false,
		"fe09.pool-a.contoso.com": false,
		"":                        false,
		"[]":                      false,
	} {
		if got := top.NamesEmulator(host); got != want {
			t.Errorf("NamesEmulator(%q) = %v, want %v", host, got, want)
		}
	}
}
