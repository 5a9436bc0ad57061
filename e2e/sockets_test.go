//go:build e2e

package e2e

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestServeBindsOnlyTopologyAddresses signs users in through a proxying front door over UDP and
// TCP (so the front door opens its upstream sockets to the Front Ends), then reads every socket
// of the fepool serve process from /proc and fails on any socket bound to a wildcard or to an
// address the topology does not name. A UDP socket must be one of the listeners; a TCP socket a
// listener, or a connection whose local address is a topology address or the admin listener.
func TestServeBindsOnlyTopologyAddresses(t *testing.T) {
	need(t, "sipsak")
	srv := serve(t, topology)
	door := srv.door(t, "pool-a.contoso.com", "udp").String()
	sipsakRegister(t, door, "user00042", "udp")
	sipsakRegister(t, srv.door(t, "pool-a.contoso.com", "tcp").String(), "user00043", "tcp")
	sipsakRegister(t, srv.door(t, "pool-b.contoso.com", "udp").String(), "user10042", "udp")

	listeners := map[netip.AddrPort]bool{}
	ips := map[netip.Addr]bool{}
	add := func(s string) {
		if a, err := netip.ParseAddrPort(s); err == nil {
			listeners[a] = true
			ips[a.Addr()] = true
		}
	}
	for _, f := range srv.top.FrontEnds {
		add(f.UDP)
		add(f.TCP)
		add(f.TLS)
	}
	for _, p := range srv.top.Pools {
		if p.FrontDoor != nil {
			add(p.FrontDoor.UDP)
			add(p.FrontDoor.TCP)
			add(p.FrontDoor.TLS)
		}
	}
	u, err := url.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := netip.MustParseAddrPort(u.Host)
	listeners[adminAddr] = true

	socks := processSockets(t, srv.cmd.Process.Pid)
	if len(socks) < len(listeners) {
		t.Fatalf("read %d sockets of the process, fewer than its %d listeners: the /proc parsing is wrong", len(socks), len(listeners))
	}
	for _, s := range socks {
		switch {
		case !s.local.Addr().IsLoopback() || s.local.Addr().IsUnspecified():
			t.Errorf("%s socket bound to %s: not a topology address", s.proto, s.local)
		case s.proto == "udp" || s.listen:
			if !listeners[s.local] {
				t.Errorf("%s socket bound to %s: not a listener of the topology", s.proto, s.local)
			}
		case !ips[s.local.Addr()] && s.local != adminAddr:
			t.Errorf("tcp connection from %s to %s: its local address is not the topology's", s.local, s.remote)
		}
	}
}

type procSocket struct {
	proto         string
	local, remote netip.AddrPort
	listen        bool
}

// processSockets returns the TCP and UDP sockets a process holds: the rows of its network
// namespace's tables (/proc/PID/net/{tcp,udp}{,6}) whose inode is one of its descriptors.
func processSockets(t *testing.T, pid int) []procSocket {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var out []procSocket
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			s := procSocket{proto: strings.TrimSuffix(table, "6"), local: procAddr(t, fields[1]), remote: procAddr(t, fields[2])}
			s.listen = s.proto == "tcp" && fields[3] == "0A"
			out = append(out, s)
		}
		f.Close()
	}
	return out
}

// procAddr decodes a /proc/net address: hex IP in host (little-endian) 32-bit words, hex port.
func procAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ipHex, portHex, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		t.Fatalf("address %q in /proc/net", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		t.Fatalf("port %q in /proc/net", s)
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port))
}
