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
// registered client holds. Targets: <= 16 KiB of heap, no goroutine beyond its socket's.
// sipgo's read buffer per socket is process-wide (sip.TransportBufferReadSize): large
// populations set it to 4 KiB, as the load generator does.
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
