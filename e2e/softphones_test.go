//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/fepool/fepool/registrar/admin"
)

// Real softphones (baresip 1.0.0, linphonec 5.1) registering with fepool. Each softphone runs
// from a config rendered into a temp dir (testdata/baresip, testdata/linphone) with free loopback
// ports, is bounded in time, and is killed at cleanup if it is still running.

const (
	softphoneRun  = 25 * time.Second // hard bound on each softphone process
	registerWait  = 10 * time.Second // REGISTER to binding visible in the admin API
	unregisterMax = 10 * time.Second // quit to binding gone and process exited
)

// freePort returns a loopback port P free for UDP and TCP, with P+1 free for TCP too: baresip
// binds UDP and TCP on its SIP port and TLS on the next one.
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, uerr := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		next, nerr := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		l.Close()
		if uerr == nil {
			u.Close()
		}
		if nerr == nil {
			next.Close()
		}
		if uerr == nil && nerr == nil {
			return port
		}
	}
	t.Fatal("no loopback port free for UDP and TCP with the next one free for TCP")
	return 0
}

// freePorts returns n distinct free ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		// Neither the same port nor a neighbour: each baresip port may take the next one.
		if p := freePort(t); !seen[p] && !seen[p+1] && !seen[p-1] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func render(t *testing.T, tmpl, dst string, data any) {
	t.Helper()
	tp, err := template.ParseFiles(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tp.Execute(f, data); err != nil {
		t.Fatal(err)
	}
}

// process is a running softphone whose output is captured; it is killed at cleanup.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

func start(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: filepath.Base(cmd.Path), cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				t.Errorf("%s (pid %d) survived SIGKILL", p.name, p.cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, tail(p.out.String(), 80))
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit on its own.
func (p *process) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", p.name, timeout)
	}
}

// waitBinding polls the admin API until aor has a binding that ok accepts.
func waitBinding(t *testing.T, srv *server, aor string, ok func(admin.Binding) bool, alive func() error) (admin.Registrations, admin.Binding) {
	t.Helper()
	deadline := time.Now().Add(registerWait)
	for {
		regs := srv.registrations(t, aor)
		for _, b := range regs.Bindings {
			if ok(b) {
				return regs, b
			}
		}
		if alive != nil {
			if err := alive(); err != nil {
				t.Fatalf("%s: no binding yet and %v; registrations %+v", aor, err, regs)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no matching binding after %s; registrations %+v", aor, registerWait, regs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitUnbound polls until aor has no binding that matches.
func waitUnbound(t *testing.T, srv *server, aor string, match func(admin.Binding) bool) {
	t.Helper()
	deadline := time.Now().Add(unregisterMax)
	for {
		regs := srv.registrations(t, aor)
		left := false
		for _, b := range regs.Bindings {
			left = left || match(b)
		}
		if !left {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: binding still there %s after the softphone quit: %+v", aor, unregisterMax, regs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func expectPrimary(t *testing.T, srv *server, aor string, regs admin.Registrations) {
	t.Helper()
	if want := srv.userInfo(t, aor).PrimaryPoolPrimaryRegistrar; regs.Registrar != want {
		t.Errorf("%s: binding held by %q, want the user's primary %q", aor, regs.Registrar, want)
	}
}

// ---------------------------------------------------------------- baresip

// baresip is a running baresip driven over ctrl_tcp (netstrings carrying JSON).
type baresip struct {
	*process
	sipPort int
	ctrl    net.Conn
	rd      *bufio.Reader
	seq     int
}

func startBaresip(t *testing.T) *baresip { t.Helper(); return startBaresipFor(t, softphoneRun) }

// startBaresipFor starts baresip bounded to run (it quits by itself after it).
func startBaresipFor(t *testing.T, run time.Duration) *baresip {
	t.Helper()
	need(t, "baresip")
	dir := t.TempDir()
	ports := freePorts(t, 2)
	render(t, "testdata/baresip/config.tmpl", filepath.Join(dir, "config"), map[string]int{"SIPPort": ports[0], "CtrlPort": ports[1]})
	for _, f := range []string{"accounts", "contacts"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// -s: SIP trace on stdout; -t: baresip quits by itself after that many seconds.
	cmd := exec.Command("baresip", "-f", dir, "-s", "-t", strconv.Itoa(int(run/time.Second)))
	b := &baresip{process: start(t, cmd), sipPort: ports[0]}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])))
		if err == nil {
			b.ctrl, b.rd = c, bufio.NewReader(c)
			t.Cleanup(func() { c.Close() })
			return b
		}
		if b.exited() || time.Now().After(deadline) {
			t.Fatalf("baresip ctrl_tcp on port %d: %v", ports[1], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// command sends a ctrl_tcp command (the menu's long commands: uanew, reginfo, quit...).
func (b *baresip) command(t *testing.T, name, params string) {
	t.Helper()
	b.seq++
	msg, _ := json.Marshal(map[string]string{"command": name, "params": params, "token": fmt.Sprint(b.seq)})
	if _, err := fmt.Fprintf(b.ctrl, "%d:%s,", len(msg), msg); err != nil {
		t.Fatalf("baresip ctrl_tcp %s: %v", name, err)
	}
}

// next reads one netstring message from ctrl_tcp.
func (b *baresip) next(deadline time.Time) (map[string]any, error) {
	b.ctrl.SetReadDeadline(deadline)
	n, err := b.rd.ReadString(':')
	if err != nil {
		return nil, err
	}
	size, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(n, ":")))
	if err != nil {
		return nil, fmt.Errorf("bad netstring length %q", n)
	}
	buf := make([]byte, size+1)
	if _, err := io.ReadFull(b.rd, buf); err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(buf[:size], &m); err != nil {
		return nil, fmt.Errorf("ctrl_tcp message %q: %v", buf, err)
	}
	return m, nil
}

// waitRegister reads ctrl_tcp messages until a register event REGISTER_OK (returned) or
// REGISTER_FAIL (fatal).
func (b *baresip) waitRegister(t *testing.T) map[string]any {
	t.Helper()
	deadline := time.Now().Add(registerWait)
	var seen []string
	for {
		m, err := b.next(deadline)
		if err != nil {
			t.Fatalf("baresip: no REGISTER_OK (%v); ctrl_tcp messages so far: %s", err, strings.Join(seen, " | "))
		}
		raw, _ := json.Marshal(m)
		seen = append(seen, string(raw))
		if m["event"] != true || m["class"] != "register" {
			continue
		}
		switch m["type"] {
		case "REGISTER_OK":
			return m
		case "REGISTER_FAIL":
			t.Fatalf("baresip: REGISTER_FAIL %v", m["param"])
		}
	}
}

// quit asks baresip to quit (it un-REGISTERs first) and waits for it to exit.
func (b *baresip) quit(t *testing.T) {
	t.Helper()
	b.command(t, "quit", "")
	b.wait(t, unregisterMax)
}

// traced returns the SIP messages of baresip's -s trace, each printed as
// "#\n<transport> <from> -> <to>\n<message>" between color escapes.
func (b *baresip) traced() []string {
	var msgs []string
	for _, chunk := range strings.Split(b.out.String(), "#\n")[1:] {
		if i := strings.Index(chunk, "\x1b[;m"); i >= 0 {
			chunk = chunk[:i]
		}
		if _, msg, ok := strings.Cut(chunk, "\n"); ok {
			msgs = append(msgs, strings.ReplaceAll(msg, "\r\n", "\n"))
		}
	}
	return msgs
}

func isBaresip(b admin.Binding) bool { return strings.Contains(b.UserAgent, "baresip") }

// TestBaresipUDPThroughFrontDoor: baresip registers over UDP through pool-a's proxy front door;
// the user's primary Front End holds the binding, with the front door's Path; quitting
// un-registers it.
func TestBaresipUDPThroughFrontDoor(t *testing.T) {
	srv := serve(t, topology) // MD5 only, the default: baresip 1.0 gives up when SHA-256 is offered too
	const user, aor = "user00101", "sip:user00101@contoso.com"
	door := srv.door(t, "pool-a.contoso.com", "udp")
	b := startBaresip(t)
	// The AOR is the real one (To: sip:user00101@contoso.com, Request-URI sip:contoso.com); the
	// outbound proxy sends everything to the front door, so contoso.com is never resolved.
	b.command(t, "uanew", fmt.Sprintf(`<sip:%s@contoso.com>;auth_pass=secret;outbound="sip:%s";regint=600;mwi=no`, user, door))
	ev := b.waitRegister(t)
	t.Logf("baresip event: %v %v", ev["type"], ev["param"])

	regs, bind := waitBinding(t, srv, aor, isBaresip, nil)
	expectPrimary(t, srv, aor, regs)
	if bind.Transport != "UDP" {
		t.Errorf("binding transport %q, want UDP", bind.Transport)
	}
	if !strings.Contains(bind.Contact, ":"+strconv.Itoa(b.sipPort)) {
		t.Errorf("binding contact %q, want baresip's port %d", bind.Contact, b.sipPort)
	}
	if len(bind.Path) != 1 || !strings.Contains(bind.Path[0], door.Addr().String()) {
		t.Errorf("binding Path %q, want the front door %s", bind.Path, door.Addr())
	}
	if bind.ExpiresIn < 300 || bind.ExpiresIn > 600 {
		t.Errorf("binding expires in %d s, want about 600", bind.ExpiresIn)
	}

	b.quit(t)
	waitUnbound(t, srv, aor, isBaresip)
}

// TestBaresipTCPOutboundThroughFrontDoor: baresip registers over TCP with RFC 5626 outbound
// (sipnat=outbound: +sip.instance, reg-id=1, Supported: outbound) through the front door; the
// 200 carries Require: outbound and the binding is a TCP flow keyed by instance and reg-id.
func TestBaresipTCPOutboundThroughFrontDoor(t *testing.T) {
	srv := serve(t, topology) // MD5 only, the default: baresip 1.0 gives up when SHA-256 is offered too
	const user, aor = "user00102", "sip:user00102@contoso.com"
	door := srv.door(t, "pool-a.contoso.com", "tcp")
	b := startBaresip(t)
	// The AOR's host is the front door's IP, which the registrar takes as contoso.com.
	b.command(t, "uanew", fmt.Sprintf(`<sip:%s@%s;transport=tcp>;auth_pass=secret;outbound="sip:%s;transport=tcp";sipnat=outbound;regint=600;mwi=no`,
		user, door.Addr(), door))
	b.waitRegister(t)

	regs, bind := waitBinding(t, srv, aor, isBaresip, nil)
	expectPrimary(t, srv, aor, regs)
	if bind.Transport != "TCP" {
		t.Errorf("binding transport %q, want TCP", bind.Transport)
	}
	if bind.RegID != 1 || !strings.Contains(bind.Instance, "urn:uuid:") {
		t.Errorf("binding instance %q reg-id %d, want baresip's urn:uuid and reg-id 1", bind.Instance, bind.RegID)
	}
	if len(bind.Path) != 1 || !strings.Contains(bind.Path[0], door.Addr().String()) || !strings.Contains(bind.Path[0], ";ob") {
		t.Errorf("binding Path %q, want the front door %s with ;ob", bind.Path, door.Addr())
	}

	// On the wire: baresip asked for outbound, and the 200 requires it.
	var asked, required bool
	for _, m := range b.traced() {
		first, _, _ := strings.Cut(m, "\n")
		switch {
		case strings.HasPrefix(first, "REGISTER ") && strings.Contains(m, "reg-id=1") && strings.Contains(m, "\nSupported: gruu, outbound, path"):
			asked = true
		case strings.HasPrefix(first, "SIP/2.0 200") && strings.Contains(m, " REGISTER\n") && strings.Contains(m, "\nRequire: outbound"):
			required = true
		}
	}
	if !asked || !required {
		t.Errorf("outbound on the wire: REGISTER with reg-id and Supported: outbound %v, 200 with Require: outbound %v", asked, required)
	}

	b.quit(t)
	waitUnbound(t, srv, aor, isBaresip)
}

// ---------------------------------------------------------------- linphonec

type linphoneRC struct {
	UDPPort, TCPPort int
	User, Identity   string
	Proxy            string // registrar URI with transport, e.g. sip:127.0.1.2:5060;transport=udp
	Expires          int
}

// linphonec is a running linphonec reading commands on stdin.
type linphonec struct {
	*process
	stdin io.WriteCloser
	log   string // its debug log (-d 6), with every SIP message
}

func startLinphonec(t *testing.T, rc linphoneRC) *linphonec {
	t.Helper()
	return startLinphonecFor(t, rc, softphoneRun)
}

// startLinphonecFor starts linphonec, killed after run.
func startLinphonecFor(t *testing.T, rc linphoneRC, run time.Duration) *linphonec {
	t.Helper()
	need(t, "linphonec")
	home := t.TempDir()
	// Without this directory linphonec 5.1 never brings SIP up ("No listening point matching").
	if err := os.MkdirAll(filepath.Join(home, ".local", "share", "linphone"), 0o755); err != nil {
		t.Fatal(err)
	}
	rcPath := filepath.Join(home, "linphonerc")
	render(t, "testdata/linphone/linphonerc.tmpl", rcPath, rc)
	l := &linphonec{log: filepath.Join(home, "linphonec.log")}
	cmd := exec.Command("linphonec", "-c", rcPath, "-d", "6", "-l", l.log)
	cmd.Dir = home
	cmd.Env = append(os.Environ(), "HOME="+home)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	l.stdin = in
	l.process = start(t, cmd)
	// Bound the run like baresip's -t: linphonec has no such option.
	timer := time.AfterFunc(run, func() { cmd.Process.Kill() })
	t.Cleanup(func() { timer.Stop() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("linphonec debug log (SIP lines):\n%s", tail(l.sipLog(), 120))
		}
	})
	return l
}

func (l *linphonec) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(l.stdin, line+"\n"); err != nil {
		t.Fatalf("linphonec stdin: %v", err)
	}
}

// sipLog is the debug log's SIP start lines and key headers.
func (l *linphonec) sipLog() string {
	b, _ := os.ReadFile(l.log)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		keep := strings.Contains(line, "belle-sip-warning") || strings.Contains(line, "Authentication")
		for _, p := range []string{"REGISTER sip:", "SIP/2.0 ", "CSeq:", "Contact:", "Expires:", "WWW-Authenticate:", "Authorization:"} {
			keep = keep || strings.HasPrefix(line, p)
		}
		if keep {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// quit makes linphonec un-REGISTER and exit.
func (l *linphonec) quit(t *testing.T) {
	t.Helper()
	l.send(t, "quit")
	l.wait(t, unregisterMax)
}

func isLinphone(b admin.Binding) bool { return strings.Contains(b.UserAgent, "Linphone") }

// TestLinphoneUDPRedirectToPrimary: linphonec registers over UDP straight to a Front End of
// pool-a that is not the user's primary; that Front End authenticates it and answers 301 with
// the primary (q=0.7) and the backup pool's registrar (q=0.3); linphonec follows it to the
// primary, which holds the binding (no Path: no proxy on the way).
//
// belle-sip (liblinphone 5.1) drops the Authorization when it follows a 3xx and does not reset
// its auth-failure count on a 3xx, so the primary's own 401 counts as a second failure in a row:
// it gives up for 60 s ("Authentication is failing constantly, will retry later") and linphonec
// asks for the password on stdin. The test answers that prompt, which resends the REGISTER to
// the primary with credentials at once.
func TestLinphoneUDPRedirectToPrimary(t *testing.T) {
	srv := serve(t, topology)
	const user, aor = "user00103", "sip:user00103@contoso.com"
	info := srv.userInfo(t, aor)
	other := info.PrimaryPoolBackupRegistrars[0]
	if other == info.PrimaryPoolPrimaryRegistrar {
		t.Fatalf("backup registrar %s is the primary", other)
	}
	target := srv.fe(t, other, "udp")
	primary := srv.fe(t, info.PrimaryPoolPrimaryRegistrar, "udp")
	port := freePort(t)
	l := startLinphonec(t, linphoneRC{
		UDPPort: port, User: user, Identity: aor, Expires: 600,
		Proxy: fmt.Sprintf("sip:%s;transport=udp", target),
	})

	prompted := false
	var regs admin.Registrations
	var bind admin.Binding
	deadline := time.Now().Add(registerWait)
	for {
		var found bool
		regs = srv.registrations(t, aor)
		for _, b := range regs.Bindings {
			if isLinphone(b) {
				bind, found = b, true
			}
		}
		if found {
			break
		}
		if !prompted && strings.Contains(l.out.String(), "Password for "+user) {
			t.Logf("linphonec asked for the password again after the 301 (belle-sip's auth-failure count): answering")
			l.send(t, "secret")
			prompted = true
		}
		if l.exited() {
			t.Fatalf("linphonec exited before registering: %v", l.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no linphonec binding after %s; registrations %+v", registerWait, regs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if regs.Registrar != info.PrimaryPoolPrimaryRegistrar {
		t.Errorf("binding held by %q, want the primary %q", regs.Registrar, info.PrimaryPoolPrimaryRegistrar)
	}
	if bind.Transport != "UDP" || len(bind.Path) != 0 || !strings.Contains(bind.Contact, ":"+strconv.Itoa(port)) {
		t.Errorf("binding %+v: want UDP, no Path, Contact on port %d", bind, port)
	}
	// The wire, from linphonec's side: a 301 from the Front End it was given, then a REGISTER
	// to the primary's address.
	wire := l.sipLog()
	if !strings.Contains(wire, "SIP/2.0 301 Redirect request to Home Server") {
		t.Errorf("linphonec never got the 301")
	}
	if !strings.Contains(wire, "REGISTER sip:"+primary.String()) {
		t.Errorf("linphonec never sent a REGISTER to the primary %s", primary)
	}

	l.quit(t)
	waitUnbound(t, srv, aor, isLinphone)
}

// TestLinphoneTCPThroughFrontDoor: linphonec registers over TCP through pool-a's proxy front
// door; the user's primary holds a TCP binding with the front door's Path.
func TestLinphoneTCPThroughFrontDoor(t *testing.T) {
	srv := serve(t, topology)
	const user, aor = "user00104", "sip:user00104@contoso.com"
	door := srv.door(t, "pool-a.contoso.com", "tcp")
	l := startLinphonec(t, linphoneRC{
		TCPPort: freePort(t), User: user, Identity: aor, Expires: 600,
		Proxy: fmt.Sprintf("sip:%s;transport=tcp", door),
	})
	alive := func() error {
		if l.exited() {
			return fmt.Errorf("linphonec exited: %v", l.err)
		}
		return nil
	}
	regs, bind := waitBinding(t, srv, aor, isLinphone, alive)
	expectPrimary(t, srv, aor, regs)
	if bind.Transport != "TCP" {
		t.Errorf("binding transport %q, want TCP", bind.Transport)
	}
	if len(bind.Path) != 1 || !strings.Contains(bind.Path[0], door.Addr().String()) {
		t.Errorf("binding Path %q, want the front door %s", bind.Path, door.Addr())
	}
	if bind.ExpiresIn < 300 || bind.ExpiresIn > 600 {
		t.Errorf("binding expires in %d s, want about 600", bind.ExpiresIn)
	}

	l.quit(t)
	waitUnbound(t, srv, aor, isLinphone)
}
