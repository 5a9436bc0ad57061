package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/fepool/fepool/client"
)

func phoneCmd(e env) *cobra.Command {
	var (
		user, password, transport string
		servers, hosts            []string
		expires, keepAlive, bound time.Duration
	)
	c := &cobra.Command{
		Use:   "phone --user SIP-URI [--password P] --server ADDR [--server ADDR ...]",
		Short: "An interactive softphone that signs in like a Lync client and shows what happens",
		Long: `phone signs in like a Lync client (following 301 in q order, answering digest challenges,
refreshing, keeping the flow alive, knowing regular from resiliency mode, signing in again
with backoff after a loss) and prints every step with its time. Commands on stdin:

  status       state, mode, registrar, home and backup registrars
  unregister   sign out (Expires: 0)
  register     sign in again
  add URI      add a contact to the user's contact list (a SIP SERVICE: a persistent change,
               refused in resiliency mode and while the pool's Back End is down)
  remove URI   remove a contact
  quit         sign out and exit (as Ctrl-C does)

A server is ADDR[:PORT][;transport=udp|tcp|tls] or a pool FQDN given an address with --host.`,
		Example: `  fepool phone --user sip:user00042@contoso.com --password secret --server 127.0.1.100:5060
  fepool phone --user sip:user00042@contoso.com --password secret --server "127.0.1.2:5060;transport=tcp"
  fepool phone --user sip:user00042@contoso.com --password secret --server pool-a.contoso.com --host pool-a.contoso.com=127.0.1.100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := client.Hosts{}
			for _, kv := range hosts {
				name, addr, ok := strings.Cut(kv, "=")
				a, err := netip.ParseAddr(addr)
				if !ok || err != nil {
					return withCode(exitUsage, fmt.Errorf("--host %q: want NAME=IP, such as pool-a.contoso.com=127.0.1.100", kv))
				}
				h[strings.ToLower(name)] = a
			}
			var list []client.Server
			for _, s := range servers {
				srv, err := client.ParseServer(s, transport, h)
				if err != nil {
					return withCode(exitUsage, err)
				}
				list = append(list, srv)
			}
			p := &phone{out: e.stdout}
			cl, err := client.New(client.Config{AOR: user, Password: password, Servers: list, Expires: expires, KeepAlive: keepAlive, UserAgent: "fepool-phone"},
				client.WithEvents(p.event))
			if err != nil {
				return withCode(exitUsage, err)
			}
			p.c = cl
			defer cl.Close()
			fmt.Fprintf(e.stdout, "Signing in as %s via %v. Commands: status, unregister, register, add URI, remove URI, quit.\n", user, list)
			if err := cl.Start(); err != nil {
				return err
			}
			ctx := cmd.Context()
			if bound > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, bound)
				defer cancel()
			}
			return p.loop(ctx, e.stdin)
		},
	}
	c.Flags().StringVarP(&user, "user", "u", "", "the user's SIP address, such as sip:user00042@contoso.com (required)")
	c.Flags().StringVarP(&password, "password", "p", "", "digest password (empty for users without auth)")
	c.Flags().StringArrayVarP(&servers, "server", "s", nil, "registrar or front door, ADDR[:PORT][;transport=T]; repeat for a list (required)")
	c.Flags().StringVarP(&transport, "transport", "t", "udp", "transport for servers that do not name one: udp, tcp or tls")
	c.Flags().StringArrayVar(&hosts, "host", nil, "NAME=IP: resolve a pool FQDN given as --server (repeatable)")
	c.Flags().DurationVar(&expires, "expires", 600*time.Second, "registration lifetime to ask for")
	c.Flags().DurationVar(&keepAlive, "keepalive", 30*time.Second, "keep-alive interval (STUN on UDP, CRLF on TCP/TLS); negative disables")
	c.Flags().DurationVar(&bound, "for", 0, "sign out and exit after this long (default: until quit or Ctrl-C)")
	_ = c.MarkFlagRequired("user")
	_ = c.MarkFlagRequired("server")
	return c
}

// phone prints a client's events and runs the commands read from stdin.
type phone struct {
	c   *client.Client
	mu  sync.Mutex
	out io.Writer
}

func (p *phone) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format, args...)
}

func (p *phone) event(e client.Event) {
	p.printf("%s %s\n", e.Time.Format("15:04:05.000"), e)
}

func (p *phone) status() {
	st := p.c.Status()
	p.printf("State     : %s (since %s)\n", st.State, st.Since.Format("15:04:05"))
	if st.State == client.Registered {
		p.printf("Mode      : %s\nRegistrar : %v\nContact   : %s\n", st.Mode, st.Registrar, st.Contact)
	}
	p.printf("Home      : %v\nBackup    : %v\n", st.Home, st.Backup)
}

// loop runs commands until quit, the end of ctx, or an error reading them; stdin ending is
// not the end: the phone stays signed in until quit or a signal.
func (p *phone) loop(ctx context.Context, stdin io.Reader) error {
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- strings.TrimSpace(sc.Text()):
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			p.printf("Signing out.\n")
			return p.stop()
		case line := <-lines:
			cmd, arg, _ := strings.Cut(line, " ")
			if c := strings.ToLower(cmd); c == "add" || c == "remove" {
				p.contact(c, strings.TrimSpace(arg))
				continue
			}
			switch strings.ToLower(line) {
			case "":
			case "status", "s":
				p.status()
			case "unregister", "u":
				if err := p.stop(); err != nil {
					p.printf("unregister: %v\n", err)
				}
			case "register", "r":
				if err := p.c.Start(); err != nil {
					p.printf("register: %v\n", err)
				}
			case "quit", "q", "exit":
				p.printf("Signing out.\n")
				return p.stop()
			case "help", "?":
				p.printf("Commands: status, unregister, register, add URI, remove URI, quit.\n")
			default:
				p.printf("unknown command %q (status, unregister, register, add URI, remove URI, quit)\n", line)
			}
		}
	}
}

// contact adds or removes a contact-list entry and says how it went.
func (p *phone) contact(op, uri string) {
	if uri == "" {
		p.printf("%s needs a SIP URI, such as %s sip:user00043@contoso.com\n", op, op)
		return
	}
	if !strings.HasPrefix(strings.ToLower(uri), "sip:") {
		uri = "sip:" + uri
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if op == "add" {
		err = p.c.AddContact(ctx, client.Contact{URI: uri})
	} else {
		err = p.c.RemoveContact(ctx, uri)
	}
	if err != nil {
		p.printf("%s %s: %v\n", op, uri, err)
		return
	}
	p.printf("%s %s: done\n", op, uri)
}

func (p *phone) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.c.Stop(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
