package registrar

import (
	"errors"
	"testing"
	"time"

	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/topology"
)

// TestCmdletDoesNotHangBehindTheDataLock: a failover or failback whose pool's data lock is held
// (by the backup service's copy, say) gives up after cmdletWait with a 409 saying why, instead
// of holding the admin API until the lock is free.
func TestCmdletDoesNotHangBehindTheDataLock(t *testing.T) {
	top, err := topology.Parse("t.yaml", []byte(`
domain: contoso.com
admin: {listen: "127.0.0.1:0"}
pools:
  - {fqdn: pool-a.contoso.com, backup: pool-b.contoso.com, ports: {udp: 0}, front_ends: [{address: 127.0.1.1}]}
  - {fqdn: pool-b.contoso.com, backup: pool-a.contoso.com, ports: {udp: 0}, front_ends: [{address: 127.0.2.1}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Topology: top})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	old := cmdletWait
	cmdletWait = 50 * time.Millisecond
	defer func() { cmdletWait = old }()
	p, err := r.pairedPool("pool-a.contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	p.data.lock()
	defer p.data.unlock()
	done := make(chan error, 2)
	go func() {
		_, err := r.FailOver("pool-a.contoso.com", admin.FailOverRequest{DisasterMode: true, Force: true})
		done <- err
	}()
	go func() {
		_, err := r.FailBack("pool-a.contoso.com", admin.FailBackRequest{})
		done <- err
	}()
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if !errors.Is(err, admin.ErrConflict) {
				t.Fatalf("a cmdlet behind the held data lock: %v, want a conflict saying the Back End is busy", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a cmdlet waited for the data lock for 10s")
		}
	}
}
