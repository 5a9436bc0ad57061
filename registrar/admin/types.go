// Package admin is the emulator's HTTP admin API on loopback and its Go client (used by
// `fepool ctl`). Routes are named after the Lync cmdlets they emulate; every /api route takes a
// bearer token, /healthz and /metrics do not. The server only translates HTTP to a Backend (the
// registrar) and errors to status codes; it holds no state.
package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fepool/fepool/registrar/eventlog"
)

// Errors a Backend returns; the server maps them to 404, 400 and 409.
var (
	ErrNotFound   = errors.New("not found")
	ErrBadRequest = errors.New("bad request")
	ErrConflict   = errors.New("conflict")
)

// FrontEnd is a Front End server's state.
type FrontEnd struct {
	FQDN  string `json:"fqdn"`
	Pool  string `json:"pool"`
	Index int    `json:"index"`
	// State is Stopped, Starting, Started or Failed.
	State       string    `json:"state"`
	Since       time.Time `json:"since"`
	Address     string    `json:"address"`
	UDP         string    `json:"udp,omitempty"`
	TCP         string    `json:"tcp,omitempty"`
	TLS         string    `json:"tls,omitempty"`
	Primaries   int       `json:"primaries"`
	Replicas    int       `json:"replicas"`
	Connections int       `json:"connections"`
}

// FrontDoor is a pool's front door.
type FrontDoor struct {
	FQDN string `json:"fqdn"`
	Mode string `json:"mode"`
	UDP  string `json:"udp,omitempty"`
	TCP  string `json:"tcp,omitempty"`
	TLS  string `json:"tls,omitempty"`
}

// Pool is a pool's state.
type Pool struct {
	FQDN       string `json:"fqdn"`
	Edition    string `json:"edition"`
	BackupPool string `json:"backupPool,omitempty"`
	// FabricState is Stopped, Starting, Started or QuorumLost.
	FabricState      string     `json:"fabricState"`
	FrontEnds        []string   `json:"frontEnds"`
	RunningFrontEnds int        `json:"runningFrontEnds"`
	QuorumRule       string     `json:"quorumRule"`
	ColdStartNeed    int        `json:"coldStartNeed"`
	ShutdownAt       *time.Time `json:"shutdownAt,omitempty"`
	RoutingGroups    int        `json:"routingGroups"`
	MissingReplicas  int        `json:"routingGroupsMissingReplicas"`
	Users            int        `json:"users"`
	RegisteredUsers  int        `json:"registeredUsers"`
	Endpoints        int        `json:"endpoints"`
	FrontDoor        *FrontDoor `json:"frontDoor,omitempty"`
	// DisasterRecovery is the pool's users' pairing state (nil without a backup pool).
	DisasterRecovery *DisasterRecovery `json:"disasterRecovery,omitempty"`
	BackEnd          BackEnd           `json:"backEnd"`
}

// DisasterRecovery is a home pool's pairing with its backup pool, as the backup sees it.
type DisasterRecovery struct {
	// State is Active, FailingOver, FailedOver or FailingBack.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// UsersServedBy is the pool serving the users now ("" when none can), and Mode how:
	// regular or resiliency.
	UsersServedBy string `json:"usersServedBy"`
	Mode          string `json:"mode"`
	// Heartbeat: whether the backup pool hears this pool, when it last did, whether a
	// partition cuts the link.
	Heard       bool      `json:"heard"`
	LastHeard   time.Time `json:"lastHeard"`
	Partitioned bool      `json:"partitioned"`
	// ResiliencyTimer is the failure detection interval; TimerExpired whether it ran out, and
	// TimerLeft (seconds) how long until it does while the pool is not heard.
	ResiliencyTimer string  `json:"resiliencyTimer"`
	TimerExpired    bool    `json:"timerExpired"`
	TimerLeft       float64 `json:"timerLeftSeconds,omitempty"`
	// Failback progress.
	UsersMoved      int     `json:"usersMoved,omitempty"`
	UsersToMove     int     `json:"usersToMove,omitempty"`
	PercentComplete float64 `json:"percentComplete,omitempty"`
	// UnsyncedSince is when a contact change last failed to reach the other Back End.
	UnsyncedSince *time.Time `json:"unsyncedSince,omitempty"`
}

// BackEnd is a pool's Back End (SQL) state.
type BackEnd struct {
	Path       string     `json:"path"`
	Up         bool       `json:"up"`
	DownSince  *time.Time `json:"downSince,omitempty"`
	Survivable bool       `json:"survivable"`
}

// FailOverRequest is Invoke-CsPoolFailOver's parameters.
type FailOverRequest struct {
	DisasterMode         bool `json:"disasterMode,omitempty"`
	Force                bool `json:"force,omitempty"`
	SkipDataVerification bool `json:"skipDataVerification,omitempty"`
	FlushStorageService  bool `json:"flushStorageService,omitempty"`
	WhatIf               bool `json:"whatIf,omitempty"`
	// WaitTime is a Go duration ("90s") or a TimeSpan ("00:01:30"); "" takes the default.
	WaitTime string `json:"waitTime,omitempty"`
}

// FailBackRequest is Invoke-CsPoolFailBack's parameters.
type FailBackRequest struct {
	WhatIf   bool   `json:"whatIf,omitempty"`
	WaitTime string `json:"waitTime,omitempty"`
}

// DRResult is what a failover or failback cmdlet did (or would do, with WhatIf).
type DRResult struct {
	PoolFqdn       string `json:"PoolFqdn"`
	BackupPoolFqdn string `json:"BackupPoolFqdn"`
	WhatIf         bool   `json:"WhatIf,omitempty"`
	State          string `json:"State"`
	Message        string `json:"Message"`
}

// BackupRelationship is Get-CsPoolBackupRelationship's output.
type BackupRelationship struct {
	PoolFqdn       string   `json:"PoolFqdn"`
	BackupPoolFqdn string   `json:"BackupPoolFqdn"`
	BackupModules  []string `json:"BackupModules"`
	// State is the pool's users' disaster-recovery state; BackupPoolState the backup pool's
	// own users' (empty when it has no backup).
	State           string `json:"State"`
	BackupPoolState string `json:"BackupPoolState,omitempty"`
	Heartbeat       string `json:"Heartbeat"`
}

// UpgradeDomain is one upgrade domain of a pool.
type UpgradeDomain struct {
	Name      string   `json:"Name"`
	FrontEnds []string `json:"FrontEnds"`
	Active    int      `json:"ActiveFrontEnds"`
}

// UpgradeReadiness is Get-CsPoolUpgradeReadinessState's output.
type UpgradeReadiness struct {
	PoolFqdn          string          `json:"PoolFqdn"`
	TotalFrontEnds    int             `json:"TotalFrontEnds"`
	ActiveFrontEnds   int             `json:"TotalActiveFrontEnds"`
	IsReadyForUpgrade bool            `json:"IsReadyForUpgrade"`
	State             string          `json:"ReadinessState"` // Ready or NotReady
	Reason            string          `json:"Reason,omitempty"`
	UpgradeDomains    []UpgradeDomain `json:"UpgradeDomains"`
}

// Contacts is a user's contact list, as the Back End serving the user holds it.
type Contacts struct {
	Identity string    `json:"identity"`
	BackEnd  string    `json:"backEndPool"`
	Contacts []Contact `json:"contacts"`
}

// Contact is one entry of a contact list.
type Contact struct {
	URI         string `json:"uri"`
	DisplayName string `json:"displayName,omitempty"`
	Groups      string `json:"groups,omitempty"`
}

// Topology is the running topology with bound addresses.
type Topology struct {
	Source    string     `json:"source"`
	Domain    string     `json:"domain"`
	Realm     string     `json:"realm"`
	Users     int        `json:"users"`
	Admin     string     `json:"admin"`
	Pools     []Pool     `json:"pools"`
	FrontEnds []FrontEnd `json:"frontEnds"`
}

// UserPoolInfo is Get-CsUserPoolInfo's output.
type UserPoolInfo struct {
	Identity                            string   `json:"Identity"`
	PrimaryPoolFqdn                     string   `json:"PrimaryPoolFqdn"`
	BackupPoolFqdn                      string   `json:"BackupPoolFqdn"`
	UserServicesPoolFqdn                string   `json:"UserServicesPoolFqdn"`
	PrimaryPoolPrimaryRegistrar         string   `json:"PrimaryPoolPrimaryRegistrar"`
	PrimaryPoolBackupRegistrars         []string `json:"PrimaryPoolBackupRegistrars"`
	PrimaryPoolMachinesInPreferredOrder []string `json:"PrimaryPoolMachinesInPreferredOrder"`
	BackupPoolPrimaryRegistrar          string   `json:"BackupPoolPrimaryRegistrar"`
	BackupPoolBackupRegistrars          []string `json:"BackupPoolBackupRegistrars"`
	BackupPoolMachinesInPreferredOrder  []string `json:"BackupPoolMachinesInPreferredOrder"`
	RoutingGroup                        int      `json:"RoutingGroup"`
	RoutingGroupId                      string   `json:"RoutingGroupId"`
	// fepool's additions: the pool whose registrar serves the user now ("" when none can),
	// the mode it gives (regular, resiliency, or why not served), and the pairing state.
	RegisteredAtPoolFqdn  string `json:"RegisteredAtPoolFqdn"`
	Mode                  string `json:"Mode"`
	DisasterRecoveryState string `json:"DisasterRecoveryState,omitempty"`
}

// RoutingGroup is one line of Get-CsPoolFabricState.
type RoutingGroup struct {
	Index       int      `json:"index"`
	ID          string   `json:"id"`
	Primary     string   `json:"primary,omitempty"`
	Secondaries []string `json:"secondaries"`
	Users       int      `json:"registeredUsers"`
}

// FabricState is Get-CsPoolFabricState's output.
type FabricState struct {
	PoolFqdn      string         `json:"PoolFqdn"`
	State         string         `json:"State"`
	RoutingGroups []RoutingGroup `json:"RoutingGroups"`
	// MissingReplicas lists RGs with fewer than the wanted replicas (with -Verbose).
	MissingReplicas []RoutingGroup `json:"MissingReplicas,omitempty"`
	WantedReplicas  int            `json:"WantedReplicas"`
}

// ResetRequest is Reset-CsPoolRegistrarState's parameters.
type ResetRequest struct {
	ResetType   string `json:"resetType"`
	MachineFqdn string `json:"machineFqdn,omitempty"`
}

// ResetResult reports what a reset did.
type ResetResult struct {
	PoolFqdn  string `json:"poolFqdn"`
	ResetType string `json:"resetType"`
	Message   string `json:"message"`
}

// Binding is one registered endpoint of a user.
type Binding struct {
	Contact    string    `json:"contact"`
	Instance   string    `json:"instance,omitempty"`
	RegID      int       `json:"regId,omitempty"`
	ExpiresIn  int       `json:"expiresIn"`
	Transport  string    `json:"transport"`
	Source     string    `json:"source"`
	CallID     string    `json:"callId"`
	CSeq       uint32    `json:"cseq"`
	UserAgent  string    `json:"userAgent,omitempty"`
	Path       []string  `json:"path,omitempty"`
	Registered time.Time `json:"registered"`
}

// Registrations is a user's registrations as held by the primary of the user's routing group
// in the pool that serves the user (RegisteredAt: home, or the backup pool).
type Registrations struct {
	Identity     string    `json:"identity"`
	Pool         string    `json:"pool"`
	RegisteredAt string    `json:"registeredAt"`
	RoutingGroup int       `json:"routingGroup"`
	Registrar    string    `json:"registrar,omitempty"`
	Bindings     []Binding `json:"bindings"`
}

// Health is /healthz's answer.
type Health struct {
	OK     bool   `json:"ok"`
	Status string `json:"status"`
}

// Backend is what the API serves; the registrar implements it.
type Backend interface {
	Topology() Topology
	FrontEnds() []FrontEnd
	// FrontEndAction starts, stops or crashes a Front End.
	FrontEndAction(fqdn, action string) (FrontEnd, error)
	Pools() []Pool
	UserPoolInfo(identity string) (UserPoolInfo, error)
	FabricState(pool string, verbose bool) (FabricState, error)
	ResetRegistrarState(pool string, req ResetRequest) (ResetResult, error)
	Registrations(identity string) (Registrations, error)
	Events() *eventlog.Log
	MetricsHandler() http.Handler
	Health() Health
	// PoolAction fails or restores a whole pool: crash, stop, start (every Front End),
	// backend-down, backend-up, partition, heal (the heartbeat link to its backup).
	PoolAction(pool, action string) (Pool, error)
	FailOver(pool string, req FailOverRequest) (DRResult, error)
	FailBack(pool string, req FailBackRequest) (DRResult, error)
	BackupRelationship(pool string) (BackupRelationship, error)
	UpgradeReadiness(pool string) (UpgradeReadiness, error)
	Contacts(identity string) (Contacts, error)
}

// ParseWaitTime reads a -WaitTime: a Go duration ("90s", "2m"), a PowerShell TimeSpan
// ("00:01:30", "1.00:00:00") or whole seconds ("90").
func ParseWaitTime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("wait time %q is negative", s)
		}
		return d, nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	days := 0
	rest := s
	if d, r, ok := strings.Cut(s, "."); ok && !strings.Contains(d, ":") {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("wait time %q is not a duration (90s), a TimeSpan (00:01:30) or seconds", s)
		}
		days, rest = n, r
	}
	var h, m int
	var sec float64
	parts := strings.Split(rest, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("wait time %q is not a duration (90s), a TimeSpan (00:01:30) or seconds", s)
	}
	var err1, err2, err3 error
	h, err1 = strconv.Atoi(parts[0])
	m, err2 = strconv.Atoi(parts[1])
	sec, err3 = strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return 0, fmt.Errorf("wait time %q is not a duration (90s), a TimeSpan (00:01:30) or seconds", s)
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second)), nil
}
