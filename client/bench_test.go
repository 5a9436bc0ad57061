package client_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/fepool/fepool/client"
	"github.com/fepool/fepool/client/clienttest"
)

// BenchmarkIdleClient registers b.N clients, each with its own socket, to a scripted registrar
// (so the registrar's memory is not counted) and reports the heap and goroutines each idle
// registered client holds. Targets: <= 16 KiB of heap, no goroutine of its own (on Linux shared
// pollers read every socket). sipgo's read buffer per TCP/TLS connection is process-wide
// (sip.TransportBufferReadSize): large populations set it to 4 KiB, as the load generator does.
func BenchmarkIdleClient(b *testing.B) { benchIdle(b, 0) }

// BenchmarkIdleClientPooled is the same with clients sharing 4 sockets. Target: <= 8 KiB.
func BenchmarkIdleClientPooled(b *testing.B) { benchIdle(b, 4) }

func benchIdle(b *testing.B, poolSize int) {
	old := sip.TransportBufferReadSize
	sip.TransportBufferReadSize = 4096
	defer func() { sip.TransportBufferReadSize = old }()
	r := clienttest.Start(b, func(req *sip.Request) []clienttest.Reply {
		return []clienttest.Reply{{Response: clienttest.OK(req, 600, regular)}}
	})
	r.Forget()
	var pool *client.Pool
	if poolSize > 0 {
		var err error
		if pool, err = client.NewPool(poolSize, netip.Addr{}, nil, nil); err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
	}
	var registered atomic.Int64
	events := func(e client.Event) {
		if e.Kind == client.RegisteredEvent {
			registered.Add(1)
		}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	clients := make([]*client.Client, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		opts := []client.Option{client.WithEvents(events)}
		if pool != nil {
			opts = append(opts, client.WithPool(pool))
		}
		c, err := client.New(client.Config{
			AOR: fmt.Sprintf("sip:user%05d@contoso.com", i), Servers: []client.Server{{Addr: r.Addr(), Transport: "udp"}},
			KeepAlive: time.Hour,
		}, opts...)
		if err != nil {
			b.Fatal(err)
		}
		c.Start()
		clients = append(clients, c)
	}
	for deadline := time.Now().Add(time.Minute); registered.Load() < int64(b.N); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d registered", registered.Load(), b.N)
		}
	}
	b.StopTimer()
	time.Sleep(100 * time.Millisecond) // let request goroutines and transactions finish
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "heapB/client")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(b.N), "goroutines/client")
	for _, c := range clients {
		c.Close()
	}
}

// BenchmarkSignIn is what a population costs the load generator per sign-in: REGISTER,
// 401 with a digest challenge, REGISTER with credentials, 200 (two client transactions, two
// parses, one digest). Clients share 8 sockets and start in batches of 50 so the scripted
// registrar never queues (no retransmissions). ns/op is wall time on all cores and includes the
// scripted registrar's parse and reply; read allocs/op and B/op, and compare runs with benchstat.
func BenchmarkSignIn(b *testing.B) {
	r := clienttest.Start(b, func(req *sip.Request) []clienttest.Reply {
		if req.GetHeader("Authorization") == nil {
			return []clienttest.Reply{{Response: clienttest.Respond(req, 401, "Unauthorized",
				`WWW-Authenticate: Digest realm="contoso.com", nonce="GOrfRf4_4xUAAAAF87HI", algorithm=SHA-256, qop="auth"`)}}
		}
		return []clienttest.Reply{{Response: clienttest.OK(req, 600, regular)}}
	})
	r.Forget()
	pool, err := client.NewPool(8, netip.Addr{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	registered := make(chan struct{}, 256)
	events := func(e client.Event) {
		if e.Kind == client.RegisteredEvent {
			registered <- struct{}{}
		}
	}
	clients := make([]*client.Client, 0, b.N)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range b.N {
		c, err := client.New(client.Config{
			AOR: fmt.Sprintf("sip:user%05d@contoso.com", i), Servers: []client.Server{{Addr: r.Addr(), Transport: "udp"}},
			Username: fmt.Sprintf("user%05d", i), Password: "secret", KeepAlive: time.Hour,
		}, client.WithEvents(events), client.WithPool(pool))
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for start := 0; start < b.N; start += 50 {
		batch := clients[start:min(start+50, b.N)]
		for _, c := range batch {
			if err := c.Start(); err != nil {
				b.Fatal(err)
			}
		}
		for range batch {
			select {
			case <-registered:
			case <-time.After(10 * time.Second):
				b.Fatal("a sign-in did not complete within 10 s")
			}
		}
	}
	b.StopTimer()
}
