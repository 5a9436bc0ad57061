package location

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var (
	t0  = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	pol = Policy{Min: 300 * time.Second, Max: 900 * time.Second, Default: 600 * time.Second, MaxEndpoints: 8}
)

func contact(uri string, expires int) ContactSpec {
	return ContactSpec{URI: uri, Key: uri, Expires: expires}
}

func req(callID string, cseq uint32, expires int, cs ...ContactSpec) Request {
	return Request{CallID: callID, CSeq: cseq, Expires: expires, Contacts: cs}
}

func TestApply(t *testing.T) {
	one := &Record{AOR: "a", Bindings: []Binding{{Contact: "sip:a@1", Key: "sip:a@1", CallID: "c1", CSeq: 5, Expires: t0.Add(600 * time.Second), Added: t0.Add(-time.Hour)}}}
	two := &Record{AOR: "a", Bindings: []Binding{one.Bindings[0], {Contact: "sip:a@2", Key: "sip:a@2", CallID: "c2", CSeq: 1, Expires: t0.Add(600 * time.Second)}}}
	expired := &Record{AOR: "a", Bindings: []Binding{{Contact: "sip:a@1", Key: "sip:a@1", CallID: "c1", CSeq: 5, Expires: t0}}}
	full := &Record{AOR: "a"}
	for i := 0; i < 8; i++ {
		full.Bindings = append(full.Bindings, Binding{Key: fmt.Sprint(i), CallID: fmt.Sprint(i), Expires: t0.Add(time.Hour)})
	}
	for _, tc := range []struct {
		name       string
		old        *Record
		req        Request
		status     int
		action     Action
		bindings   int
		expiresIn  int // of the first binding, when bindings > 0
		minExpires int
	}{
		{"add with default expiry", nil, req("c1", 1, -1, contact("sip:a@1", -1)), 200, Added, 1, 600, 0},
		{"expires header", nil, req("c1", 1, 400, contact("sip:a@1", -1)), 200, Added, 1, 400, 0},
		{"contact param beats header", nil, req("c1", 1, 400, contact("sip:a@1", 500)), 200, Added, 1, 500, 0},
		{"clamped to max", nil, req("c1", 1, 3600, contact("sip:a@1", -1)), 200, Added, 1, 900, 0},
		{"below min is 423", nil, req("c1", 1, 60, contact("sip:a@1", -1)), 423, 0, 0, 0, 300},
		{"contact param below min is 423", nil, req("c1", 1, 600, contact("sip:a@1", 299)), 423, 0, 0, 0, 300},
		{"at min", nil, req("c1", 1, 300, contact("sip:a@1", -1)), 200, Added, 1, 300, 0},
		{"refresh", one, req("c1", 6, 600, contact("sip:a@1", -1)), 200, Refreshed, 1, 600, 0},
		{"refresh after expiry is added", expired, req("c1", 6, 600, contact("sip:a@1", -1)), 200, Added, 1, 600, 0},
		{"new call-id is fixed", one, req("c9", 1, 600, contact("sip:a@1", -1)), 200, Fixed, 1, 600, 0},
		{"out of order cseq", one, req("c1", 5, 600, contact("sip:a@1", -1)), 400, 0, 0, 0, 0},
		{"second contact added", one, req("c2", 1, 600, contact("sip:a@2", -1)), 200, Added, 2, 600, 0},
		{"several contacts in one request", nil, req("c1", 1, 600, contact("sip:a@1", -1), contact("sip:a@2", 700)), 200, Added, 2, 600, 0},
		{"remove one", two, req("c2", 2, 0, contact("sip:a@2", -1)), 200, Removed, 1, 600, 0},
		{"remove one by param", two, req("c2", 2, 600, contact("sip:a@2", 0)), 200, Removed, 1, 600, 0},
		{"remove unknown is fine", one, req("c7", 1, 0, contact("sip:a@7", -1)), 200, Removed, 1, 600, 0},
		{"remove last", one, req("c1", 6, 0, contact("sip:a@1", -1)), 200, Removed, 0, 0, 0},
		{"star removes all", two, Request{CallID: "c9", CSeq: 1, Star: true, Expires: 0}, 200, Removed, 0, 0, 0},
		{"star keeps a newer binding of the same call-id", two, Request{CallID: "c2", CSeq: 1, Star: true, Expires: 0}, 200, Removed, 1, 600, 0},
		{"star needs expires 0", two, Request{CallID: "c9", CSeq: 1, Star: true, Expires: 600}, 400, 0, 0, 0, 0},
		{"star needs expires header", two, Request{CallID: "c9", CSeq: 1, Star: true, Expires: -1}, 400, 0, 0, 0, 0},
		{"star alone", two, Request{CallID: "c9", CSeq: 1, Star: true, Expires: 0, Contacts: []ContactSpec{contact("sip:a@1", 0)}}, 400, 0, 0, 0, 0},
		{"fetch", two, req("c9", 1, -1), 200, Fetched, 2, 600, 0},
		{"fetch drops expired", expired, req("c9", 1, -1), 200, Fetched, 0, 0, 0},
		{"ninth endpoint refused", full, req("c9", 1, 600, contact("sip:a@9", -1)), 403, 0, 0, 0, 0},
		{"refresh when full is fine", full, req("0", 1, 600, ContactSpec{URI: "x", Key: "0", Expires: -1}), 200, Refreshed, 8, 600, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Apply("a", tc.old, tc.req, pol, t0)
			if r.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", r.Status, r.Reason, tc.status)
			}
			if r.MinExpires != tc.minExpires {
				t.Errorf("MinExpires %d, want %d", r.MinExpires, tc.minExpires)
			}
			if r.Status != 200 {
				if r.Record != nil {
					t.Error("a failed request returned a record")
				}
				return
			}
			if r.Action != tc.action {
				t.Errorf("action %s, want %s", r.Action, tc.action)
			}
			var n int
			if r.Record != nil {
				n = len(r.Record.Bindings)
			}
			if n != tc.bindings {
				t.Fatalf("%d bindings, want %d", n, tc.bindings)
			}
			if n > 0 {
				if got := r.Record.Bindings[0].ExpiresIn(t0); got != tc.expiresIn {
					t.Errorf("first binding expires in %d, want %d", got, tc.expiresIn)
				}
			}
			if tc.old != nil && len(tc.old.Bindings) > 0 && tc.old.Bindings[0].Key == "sip:a@1" && tc.old.Bindings[0].CallID != "c1" {
				t.Error("Apply modified the old record")
			}
		})
	}
}

func TestRefreshKeepsAddedTimeAndOldRecordIntact(t *testing.T) {
	r1 := Apply("a", nil, req("c1", 1, 600, contact("sip:a@1", -1)), pol, t0)
	r2 := Apply("a", r1.Record, req("c1", 2, 600, contact("sip:a@1", -1)), pol, t0.Add(time.Minute))
	if !r2.Record.Bindings[0].Added.Equal(t0) {
		t.Errorf("refresh changed Added to %v", r2.Record.Bindings[0].Added)
	}
	if r1.Record.Bindings[0].CSeq != 1 {
		t.Error("the first record was modified by the refresh")
	}
}

func TestInstanceKeyedBindings(t *testing.T) {
	// RFC 5626: the same instance from a new contact address replaces its binding.
	a := ContactSpec{URI: "sip:a@10.0.0.1:5060", Key: "<urn:uuid:1>|1", Instance: "<urn:uuid:1>", RegID: 1, Expires: -1}
	b := ContactSpec{URI: "sip:a@10.0.0.1:6000", Key: "<urn:uuid:1>|1", Instance: "<urn:uuid:1>", RegID: 1, Expires: -1}
	r1 := Apply("a", nil, req("c1", 1, 600, a), pol, t0)
	r2 := Apply("a", r1.Record, req("c1", 2, 600, b), pol, t0)
	if len(r2.Record.Bindings) != 1 || r2.Record.Bindings[0].Contact != b.URI || r2.Action != Refreshed {
		t.Fatalf("got %+v action %s", r2.Record.Bindings, r2.Action)
	}
	if r2.Record.Bindings[0].Instance != "<urn:uuid:1>" || r2.Record.Bindings[0].RegID != 1 {
		t.Error("instance/reg-id not kept")
	}
}

func TestStoreReplicationAndTransfer(t *testing.T) {
	rgA, rgB := RG{0, 1}, RG{0, 2}
	primary, secondary, fresh := NewStore(), NewStore(), NewStore()
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			aor := fmt.Sprintf("user%03d@contoso.com", i%50)
			rg := rgA
			if i%2 == 1 {
				rg = rgB
			}
			err := primary.Update(rg, aor, func(old *Record) (*Record, error) {
				cseq := uint32(1)
				if old != nil {
					cseq = old.Bindings[0].CSeq + 1
				}
				r := Apply(aor, old, req("c", cseq, 600, contact("sip:x@1", -1)), pol, t0)
				secondary.Put(rg, aor, r.Record)
				return r.Record, nil
			})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	for i := 0; i < 50; i++ {
		aor := fmt.Sprintf("user%03d@contoso.com", i)
		p, s := primary.Get(aor), secondary.Get(aor)
		if p == nil || p != s {
			t.Fatalf("%s: primary %p secondary %p", aor, p, s)
		}
		if p.Bindings[0].CSeq != 4 {
			t.Fatalf("%s: CSeq %d, want 4 (four serialised updates)", aor, p.Bindings[0].CSeq)
		}
	}
	if n := primary.CopyRG(rgA, fresh); n != 25 {
		t.Fatalf("CopyRG copied %d, want 25", n)
	}
	if u, b := fresh.Counts(func(RG) bool { return true }, t0); u != 25 || b != 25 {
		t.Fatalf("fresh counts %d/%d", u, b)
	}
	if n := secondary.DropRG(func(rg RG) bool { return rg == rgB }); n != 25 {
		t.Fatalf("DropRG dropped %d", n)
	}
	if u, _ := secondary.Counts(func(rg RG) bool { return rg == rgB }, t0); u != 0 {
		t.Fatal("RG B still present")
	}
	if n := primary.Sweep(t0.Add(599 * time.Second)); n != 0 {
		t.Fatalf("early sweep removed %d", n)
	}
	if n := primary.Sweep(t0.Add(600 * time.Second)); n != 50 {
		t.Fatalf("sweep removed %d, want 50", n)
	}
	if primary.Get("user000@contoso.com") != nil {
		t.Fatal("expired record survived the sweep")
	}
	if err := primary.Update(rgA, "x", func(*Record) (*Record, error) { return nil, fmt.Errorf("no") }); err == nil {
		t.Fatal("Update swallowed fn's error")
	}
}

func BenchmarkApplyRefresh(b *testing.B) {
	r := Apply("a", nil, req("c1", 1, 600, contact("sip:a@1", -1)), pol, t0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r = Apply("a", r.Record, req("c1", uint32(i+2), 600, contact("sip:a@1", -1)), pol, t0)
	}
}
