package registrar_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/eventlog"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

func apiStatus(err error) int {
	var ae *admin.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func TestAdminAPI(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	ctx := context.Background()
	base := "http://" + env.R.AdminAddr().String()

	// Every /api route wants the token; /healthz and /metrics do not.
	if _, err := admin.NewClient(base, "wrong").Pools(ctx); apiStatus(err) != 401 {
		t.Fatalf("wrong token: %v", err)
	}
	res, err := http.Get(base + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res.Body.Close()
	if h, err := env.Admin.Health(ctx); err != nil || !h.OK || !strings.Contains(h.Status, "pool-a.contoso.com Started (3/3 Front Ends)") {
		t.Fatalf("health %+v %v", h, err)
	}

	info, err := env.Admin.UserPoolInfo(ctx, "sip:user00042@contoso.com")
	if err != nil || info.PrimaryPoolFqdn != "pool-a.contoso.com" || info.BackupPoolFqdn != "pool-b.contoso.com" || len(info.PrimaryPoolMachinesInPreferredOrder) != 3 || info.BackupPoolPrimaryRegistrar == "" {
		t.Fatalf("Get-CsUserPoolInfo = %+v %v", info, err)
	}
	if _, err := env.Admin.UserPoolInfo(ctx, "sip:nobody@contoso.com"); apiStatus(err) != 404 {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := env.Admin.UserPoolInfo(ctx, "not a uri"); apiStatus(err) != 400 {
		t.Fatalf("bad identity: %v", err)
	}

	fs, err := env.Admin.FabricState(ctx, "pool-a.contoso.com", true)
	if err != nil || fs.State != "Started" || len(fs.RoutingGroups) != 16 || len(fs.MissingReplicas) != 0 || fs.WantedReplicas != 3 {
		t.Fatalf("Get-CsPoolFabricState = %+v %v", fs, err)
	}
	for _, g := range fs.RoutingGroups {
		if g.Primary == "" || len(g.Secondaries) != 2 || len(g.ID) != 36 {
			t.Fatalf("RG %+v", g)
		}
	}
	if _, err := env.Admin.FabricState(ctx, "pool-z.contoso.com", false); apiStatus(err) != 404 {
		t.Fatalf("unknown pool: %v", err)
	}

	if _, err := env.Admin.FrontEndAction(ctx, "fe09.pool-a.contoso.com", "crash"); apiStatus(err) != 404 {
		t.Fatalf("unknown FE: %v", err)
	}
	if _, err := env.Admin.FrontEndAction(ctx, "fe01.pool-a.contoso.com", "explode"); apiStatus(err) != 400 {
		t.Fatalf("unknown action: %v", err)
	}
	if _, err := env.Admin.FrontEndAction(ctx, "fe01.pool-a.contoso.com", "start"); apiStatus(err) != 409 {
		t.Fatalf("start a running FE: %v", err)
	}
	if _, err := env.Admin.ResetRegistrarState(ctx, "pool-a.contoso.com", admin.ResetRequest{ResetType: "Sideways"}); apiStatus(err) != 400 {
		t.Fatalf("bad reset type: %v", err)
	}

	// Follow the event log while a Front End is stopped.
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a shared machine under go test ./...
	defer cancel()
	got := make(chan eventlog.Event, 64)
	done := make(chan error, 1)
	since := env.R.Events().Last() // before the stop: read in the goroutine, it could come after
	go func() {
		done <- env.Admin.FollowEvents(fctx, since, func(e eventlog.Event) error {
			select {
			case got <- e:
			case <-fctx.Done():
			}
			return nil
		})
	}()
	// No wait for the stream to open: it replays retained events after the given sequence.
	fe, err := env.Admin.FrontEndAction(ctx, "fe03.pool-a.contoso.com", "stop")
	if err != nil || fe.State != "Stopped" {
		t.Fatalf("stop: %+v %v", fe, err)
	}
	// The stream ends at fctx's deadline at the latest: a missing event fails, it does not hang.
	var seen []int
	stopped := func(e eventlog.Event) bool {
		seen = append(seen, e.EventID)
		if e.EventID == 32108 && (e.FrontEnd != "fe03.pool-a.contoso.com" || e.Source != "LS User Services") {
			t.Fatalf("event %+v", e)
		}
		return e.EventID == 32108
	}
wait:
	for {
		select {
		case e := <-got:
			if stopped(e) {
				break wait
			}
		case err := <-done:
			for len(got) > 0 {
				if stopped(<-got) {
					done <- err // read again below
					break wait
				}
			}
			t.Fatalf("the event stream ended without event 32108 (saw %v): %v", seen, err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow: %v", err)
	}
	evs, err := env.Admin.Events(ctx, 0)
	if err != nil || len(evs) == 0 {
		t.Fatalf("events: %d %v", len(evs), err)
	}
	if b, _ := json.Marshal(evs[0]); !strings.Contains(string(b), `"kind":"PoolStarted"`) {
		t.Errorf("first event %s", b)
	}

	top, err := env.Admin.Topology(ctx)
	if err != nil || top.Users != 2001 || len(top.FrontEnds) != 6 || top.FrontEnds[0].UDP == "" || top.Pools[0].FrontDoor == nil {
		t.Fatalf("topology %+v %v", top, err)
	}
	m := env.Metrics()
	for _, want := range []string{
		`fepool_frontend_state{frontend="fe03.pool-a.contoso.com",pool="pool-a.contoso.com",state="Stopped"} 1`,
		`fepool_pool_fabric_state{pool="pool-a.contoso.com",state="Started"} 1`,
		`fepool_events_total{kind="FrontEndInactive"} 1`,
		"fepool_registrations{pool=",
		"go_goroutines",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The pairing cmdlets over HTTP.
	if _, err := env.Admin.FailOver(ctx, "pool-z.contoso.com", admin.FailOverRequest{}); apiStatus(err) != 404 {
		t.Fatalf("failover of an unknown pool: %v", err)
	}
	if _, err := env.Admin.FailOver(ctx, "pool-a.contoso.com", admin.FailOverRequest{WaitTime: "-3s"}); apiStatus(err) != 400 {
		t.Fatalf("negative -WaitTime: %v", err)
	}
	if _, err := env.Admin.FailBack(ctx, "pool-a.contoso.com", admin.FailBackRequest{}); apiStatus(err) != 409 {
		t.Fatalf("failback of an active pool: %v", err)
	}
	if _, err := env.Admin.PoolAction(ctx, "pool-a.contoso.com", "explode"); apiStatus(err) != 400 {
		t.Fatalf("unknown pool action: %v", err)
	}
	wi, err := env.Admin.FailOver(ctx, "pool-a.contoso.com", admin.FailOverRequest{WhatIf: true, DisasterMode: true})
	if err != nil || !wi.WhatIf || wi.State != "Active" || !strings.Contains(wi.Message, "disaster mode") {
		t.Fatalf("failover -WhatIf: %+v %v", wi, err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/pools/pool-a.contoso.com/failover", strings.NewReader(`{"disasterMood": true}`))
	req.Header.Set("Authorization", "Bearer test-token")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 400 {
		t.Fatalf("unknown JSON field: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if rel, err := env.Admin.BackupRelationship(ctx, "pool-b.contoso.com"); err != nil || rel.BackupPoolFqdn != "pool-a.contoso.com" || rel.Heartbeat != "heard" {
		t.Fatalf("Get-CsPoolBackupRelationship: %+v %v", rel, err)
	}
	if ur, err := env.Admin.UpgradeReadiness(ctx, "pool-a.contoso.com"); err != nil || ur.IsReadyForUpgrade || ur.ActiveFrontEnds != 2 || len(ur.UpgradeDomains) != 3 {
		t.Fatalf("Get-CsPoolUpgradeReadinessState with a Front End stopped: %+v %v", ur, err)
	}
	if cs, err := env.Admin.Contacts(ctx, "sip:user00042@contoso.com"); err != nil || cs.BackEnd != "pool-a.contoso.com" || len(cs.Contacts) != 0 {
		t.Fatalf("contacts: %+v %v", cs, err)
	}

	res, _ = http.Get(base + "/nope")
	if res.StatusCode != 404 {
		t.Errorf("unknown route: %d", res.StatusCode)
	}
	res.Body.Close()
}
