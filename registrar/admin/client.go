package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fepool/fepool/registrar/eventlog"
)

// Client calls the admin API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client for the API at base (such as http://127.0.0.1:8060).
func NewClient(base, token string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}
}

// APIError is an error answer of the API.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

// ErrUnreachable wraps failures to reach the API at all.
var ErrUnreachable = errors.New("admin API unreachable")

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if res.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: res.StatusCode, Message: eb.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

// seg makes an FQDN or SIP identity safe as one path segment.
func seg(s string) string { return url.PathEscape(s) }

// Topology returns the running topology.
func (c *Client) Topology(ctx context.Context) (t Topology, err error) {
	return t, c.do(ctx, http.MethodGet, "/api/v1/topology", nil, &t)
}

// FrontEnds lists the Front Ends.
func (c *Client) FrontEnds(ctx context.Context) (out []FrontEnd, err error) {
	return out, c.do(ctx, http.MethodGet, "/api/v1/frontends", nil, &out)
}

// FrontEndAction starts, stops or crashes a Front End.
func (c *Client) FrontEndAction(ctx context.Context, fqdn, action string) (out FrontEnd, err error) {
	return out, c.do(ctx, http.MethodPost, "/api/v1/frontends/"+seg(fqdn)+"/"+seg(action), nil, &out)
}

// Pools lists the pools.
func (c *Client) Pools(ctx context.Context) (out []Pool, err error) {
	return out, c.do(ctx, http.MethodGet, "/api/v1/pools", nil, &out)
}

// UserPoolInfo is Get-CsUserPoolInfo.
func (c *Client) UserPoolInfo(ctx context.Context, identity string) (out UserPoolInfo, err error) {
	return out, c.do(ctx, http.MethodGet, "/api/v1/users/"+seg(identity)+"/poolinfo", nil, &out)
}

// FabricState is Get-CsPoolFabricState.
func (c *Client) FabricState(ctx context.Context, pool string, verbose bool) (out FabricState, err error) {
	return out, c.do(ctx, http.MethodGet, "/api/v1/pools/"+seg(pool)+"/fabric?verbose="+strconv.FormatBool(verbose), nil, &out)
}

// ResetRegistrarState is Reset-CsPoolRegistrarState.
func (c *Client) ResetRegistrarState(ctx context.Context, pool string, req ResetRequest) (out ResetResult, err error) {
	return out, c.do(ctx, http.MethodPost, "/api/v1/pools/"+seg(pool)+"/reset", req, &out)
}

// Registrations returns a user's bindings.
func (c *Client) Registrations(ctx context.Context, identity string) (out Registrations, err error) {
	return out, c.do(ctx, http.MethodGet, "/api/v1/users/"+seg(identity)+"/registrations", nil, &out)
}

// PoolAction crashes, stops or starts every Front End of a pool, takes its Back End down or up,
// or cuts or heals its heartbeat link to its backup pool.
func (c *Client) PoolAction(ctx context.Context, pool, action string) (out Pool, err error) {
	return out, c.do(ctx, http.MethodPost, "/api/v1/pools/"+seg(pool)+"/actions/"+seg(action), nil, &out)
}

// FailOver is Invoke-CsPoolFailOver.
func (c *Client) FailOver(ctx context.Context, pool string, req FailOverRequest) (out DRResult, err error) {
	return out, c.do(ctx, http.MethodPost, "/api/v1/pools/"+seg(pool)+"/failover", req, &out)
}

// FailBack is Invoke-CsPoolFailBack.
func (c *Client) FailBack(ctx context.Context, pool string, req FailBackRequest) (out DRResult, err error) {
	return out, c.do(ctx, http.MethodPost, "/api/v1/pools/"+seg(pool)+"/failback", req, &out)
}

// BackupRelationship is Get-CsPoolBackupRelationship.
func (c *Client) BackupRelationship(ctx context.Context, pool string) (out BackupRelationship, err error) {
	return out, c.do(ctx, http.MethodGet, "/api/v1/pools/"+seg(pool)+"/backup-relationship", nil, &out)
}

// UpgradeReadiness is Get-CsPoolUpgradeReadinessState.
func (c *Client) UpgradeReadiness(ctx context.Context, pool string) (out UpgradeReadiness, err error) {
	return out, c.do(ctx, http.MethodGet, "/api/v1/pools/"+seg(pool)+"/upgrade-readiness", nil, &out)
}

// Contacts returns a user's contact list.
func (c *Client) Contacts(ctx context.Context, identity string) (out Contacts, err error) {
	return out, c.do(ctx, http.MethodGet, "/api/v1/users/"+seg(identity)+"/contacts", nil, &out)
}

// Health calls /healthz.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/healthz", nil, &h)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable {
		return Health{OK: false, Status: ae.Message}, nil
	}
	return h, err
}

// Events returns the retained events after since.
func (c *Client) Events(ctx context.Context, since uint64) (out []eventlog.Event, err error) {
	return out, c.do(ctx, http.MethodGet, "/api/v1/events?since="+strconv.FormatUint(since, 10), nil, &out)
}

// FollowEvents streams events after since to fn until ctx ends, fn fails or the server closes.
func (c *Client) FollowEvents(ctx context.Context, since uint64, fn func(eventlog.Event) error) error {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}, "follow": {"true"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := (&http.Client{}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil {
			eb.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: res.StatusCode, Message: eb.Error}
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e eventlog.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("decoding event: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}
