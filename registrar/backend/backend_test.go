package backend

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

func TestContactsOutageSyncAndRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pool-a.db")
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetContact("alice@contoso.com", "pool-a", Contact{URI: "sip:bob@contoso.com", DisplayName: "Bob"}); err != nil {
		t.Fatal(err)
	}
	a.SetContact("alice@contoso.com", "pool-a", Contact{URI: "sip:bob@contoso.com", DisplayName: "Robert", Groups: "1"})
	a.SetContact("alice@contoso.com", "pool-a", Contact{URI: "sip:carol@contoso.com"})
	a.SetContact("dave@contoso.com", "pool-b", Contact{URI: "sip:erin@contoso.com"})
	cs, _ := a.Contacts("alice@contoso.com")
	if len(cs) != 2 || cs[0].DisplayName != "Robert" || cs[0].Groups != "1" {
		t.Fatalf("contacts %+v", cs)
	}
	// An outage refuses changes but not reads.
	a.SetUp(false, t0)
	if up, since := a.Up(); up || !since.Equal(t0) {
		t.Fatalf("Up = %v %v", up, since)
	}
	if err := a.SetContact("alice@contoso.com", "pool-a", Contact{URI: "sip:x@y.z"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("SetContact during an outage: %v", err)
	}
	if err := a.DeleteContact("alice@contoso.com", "sip:bob@contoso.com"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("DeleteContact during an outage: %v", err)
	}
	if cs, err := a.Contacts("alice@contoso.com"); err != nil || len(cs) != 2 {
		t.Fatalf("read during an outage: %v %v", cs, err)
	}
	a.SetUp(true, t0)
	// Sync copies exactly one home pool's users.
	b, err := Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.SetContact("alice@contoso.com", "pool-a", Contact{URI: "sip:stale@contoso.com"})
	if n, err := a.SyncUsers(b, "pool-a"); err != nil || n != 2 {
		t.Fatalf("sync: %d %v", n, err)
	}
	if cs, _ := b.Contacts("alice@contoso.com"); len(cs) != 2 || cs[1].URI != "sip:carol@contoso.com" {
		t.Fatalf("synced %+v", cs)
	}
	if cs, _ := b.Contacts("dave@contoso.com"); len(cs) != 0 {
		t.Fatalf("sync copied another pool's user: %+v", cs)
	}
	// DR state and contacts survive a restart.
	if err := a.SaveDR(DRState{Pool: "pool-a", State: "FailedOver", Since: t0, Detail: "disaster"}); err != nil {
		t.Fatal(err)
	}
	a.DeleteContact("alice@contoso.com", "sip:carol@contoso.com")
	a.Close()
	a, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if cs, _ := a.Contacts("alice@contoso.com"); len(cs) != 1 || cs[0].URI != "sip:bob@contoso.com" {
		t.Fatalf("after a restart: %+v", cs)
	}
	d, ok, err := a.LoadDR("pool-a")
	if err != nil || !ok || d.State != "FailedOver" || !d.Since.Equal(t0) || d.Detail != "disaster" {
		t.Fatalf("LoadDR = %+v %v %v", d, ok, err)
	}
	if _, ok, _ := a.LoadDR("pool-z"); ok {
		t.Fatal("LoadDR found an unknown pool")
	}
}

func TestOpenBadPath(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing-dir", "x.db")); err == nil {
		t.Fatal("opened a database in a directory that does not exist")
	}
}

func TestOpenInMissingDirectory(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope", "pool.db"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open in a missing directory: %v", err)
	}
}

func TestSyncNeedsBothUp(t *testing.T) {
	a, _ := Open(":memory:")
	b, _ := Open(":memory:")
	defer a.Close()
	defer b.Close()
	if err := a.SetContact("alice@contoso.com", "pool-a", Contact{URI: "sip:bob@contoso.com"}); err != nil {
		t.Fatal(err)
	}
	b.SetUp(false, time.Now())
	if _, err := a.SyncUsers(b, "pool-a"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("sync to a down Back End: %v", err)
	}
	if cs, _ := b.Contacts("alice@contoso.com"); len(cs) != 0 {
		t.Fatalf("a refused sync copied %v", cs)
	}
}

// TestUnavailableAtRunTime: a database that cannot take a change at run time fails it with an
// Error naming the Back End and matching ErrUnavailable (the SIP edge answers 503), within a
// bounded time; a fault of the SQL itself does not match it (500).
func TestUnavailableAtRunTime(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fault       func(t *testing.T, s *Store, path string) // behind the Store's back, or on its own connection
		reason      string
		unavailable bool
	}{
		{"locked by another connection", func(t *testing.T, _ *Store, path string) {
			other, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			other.SetMaxOpenConns(1)
			t.Cleanup(func() { other.Close() })
			conn, err := other.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
				t.Fatal(err)
			}
		}, "locked", true},
		{"read-only", func(t *testing.T, s *Store, _ string) {
			// Its one connection refuses writes from now on (SQLITE_READONLY), as a database
			// reopened read-only would.
			if _, err := s.db.Exec("PRAGMA query_only = ON"); err != nil {
				t.Fatal(err)
			}
		}, "read-only", true},
		{"shut", func(t *testing.T, s *Store, _ string) { s.Close() }, "shut down", true},
		{"emulated outage", func(t *testing.T, s *Store, _ string) { s.SetUp(false, t0) }, "down", true},
		{"table dropped (our SQL fails)", func(t *testing.T, _ *Store, path string) {
			other, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if _, err := other.Exec("DROP TABLE contacts"); err != nil {
				t.Fatal(err)
			}
		}, "failed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pool-a.db")
			s, err := Open(path, Named("pool-a.contoso.com"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.SetContact("alice@contoso.com", "pool-a", Contact{URI: "sip:bob@contoso.com"}); err != nil {
				t.Fatal(err)
			}
			tc.fault(t, s, path)
			start := time.Now()
			err = s.SetContact("alice@contoso.com", "pool-a", Contact{URI: "sip:carol@contoso.com"})
			took := time.Since(start)
			var be *Error
			if !errors.As(err, &be) || be.BackEnd != "pool-a.contoso.com" || !strings.Contains(be.Reason, tc.reason) {
				t.Fatalf("SetContact: %v (%#v), want an Error of pool-a.contoso.com saying %q", err, be, tc.reason)
			}
			if errors.Is(err, ErrUnavailable) != tc.unavailable {
				t.Fatalf("SetContact: %v: unavailable %v, want %v", err, !tc.unavailable, tc.unavailable)
			}
			// A SIP request must not wait for a locked Back End past a UDP client's third
			// retransmission (0.5 + 1 + 2 s): it waited 5 s per statement.
			if took > 3*time.Second {
				t.Fatalf("SetContact took %s", took)
			}
		})
	}
}
