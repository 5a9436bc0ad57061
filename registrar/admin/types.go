// Package admin is the emulator's HTTP admin API on loopback and its Go client (used by
// `fepool ctl`). Routes are named after the Lync cmdlets they emulate; every /api route takes a
// bearer token, /healthz and /metrics do not. The server only translates HTTP to a Backend (the
// registrar) and errors to status codes; it holds no state.
package admin

import (
	"errors"
	"net/http"
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

// Registrations is a user's registrations as held by the primary of the user's routing group.
type Registrations struct {
	Identity     string    `json:"identity"`
	Pool         string    `json:"pool"`
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
}
