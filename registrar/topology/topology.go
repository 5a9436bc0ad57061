// Package topology owns the description of what fepool emulates: pools, their Front Ends and front
// doors, pairing, users, routing-group counts and every timer. It loads strict YAML (unknown fields
// and bad values are errors naming file, line and field), applies defaults and validates, producing
// an immutable *Topology that the rest of the registrar reads without locking. A file beyond its
// bounds (size, nesting, aliases) is refused before the YAML decoder sees it, and one with more
// than MaxUsers users by validation; ReadFile, ParseYAML and Decode apply the same bounds to
// fepool's other YAML files (load scenarios). They keep no state and are safe for concurrent use.
package topology

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/fepool/fepool/configs"
)

// Editions of a pool.
const (
	Standard   = "standard"
	Enterprise = "enterprise"
)

// Front door modes.
const (
	// ModeProxy forwards a REGISTER to the user's current registrar (with Path), for softphones
	// that do not follow 3xx.
	ModeProxy = "proxy"
	// ModeRedirect answers 301 with the user's current registrar, as a Lync Director does.
	ModeRedirect = "redirect"
)

// Transports a listener can serve.
const (
	UDP = "udp"
	TCP = "tcp"
	TLS = "tls"
)

// Defaults that the file may override.
const (
	DefaultPort          = 5060
	DefaultTLSPort       = 5061
	DefaultRoutingGroups = 64
	DefaultAdminListen   = "127.0.0.1:8060"
	DefaultServerHeader  = "RTC/5.0"
	MaxFrontEndsPerPool  = 16
	MaxEndpointsPerUser  = 8
	// DefaultMaxConnsPerIP is Kamailio's default tcp_max_connections: one source cannot take a
	// process's descriptors (20,000 on a stock machine) from everyone else.
	DefaultMaxConnsPerIP  = 2048
	defaultExpiresMin     = 300 * time.Second
	defaultExpiresMax     = 900 * time.Second
	defaultExpiresDefault = 600 * time.Second
)

// Topology is a validated, resolved topology. It is never modified after Load.
type Topology struct {
	// Source names where it came from: a file path or the embedded default.
	Source string
	// Domain is the SIP domain users belong to by default; Realm is the digest realm.
	Domain       string
	Realm        string
	ServerHeader string
	Admin        Admin
	SIP          SIP
	Fabric       Fabric
	Pairing      Pairing
	Pools        []*Pool
	Users        *Directory
}

// Admin is the HTTP admin API's configuration.
type Admin struct {
	Listen string
	// Token is the bearer token; empty means generate one at start.
	Token string
}

// SIP holds the registrar's protocol settings, shared by every Front End.
type SIP struct {
	ExpiresMin, ExpiresMax, ExpiresDefault time.Duration
	MaxEndpoints                           int
	// KeepAliveTimeout is advertised in ms-keep-alive.
	KeepAliveTimeout time.Duration
	// TCPIdleTimeout closes a TCP/TLS connection that sent nothing for this long.
	TCPIdleTimeout time.Duration
	// NonceLifetime bounds how long a digest nonce is accepted before it is stale.
	NonceLifetime time.Duration
	// RevealUnknownUsers answers credentials of a user the topology does not have with Lync's
	// 404 and ms-diagnostics 1003, which tells anyone who asks which users exist (sipvicious
	// svwar/svcrack read it). Off (the default), an unknown user gets the same fresh 401 as a
	// wrong password (DESIGN §4).
	RevealUnknownUsers bool
	// DigestAlgorithms offered in challenges, in order of preference (MD5, SHA-256).
	DigestAlgorithms []string
	// RetryAfter is the Retry-After sent with 503 answers.
	RetryAfter time.Duration
	TLSCert    string
	TLSKey     string
	Limits     Limits
}

// Limits protect every listener from floods.
type Limits struct {
	// MaxInFlight bounds requests handled at once per listener set; above it, 503.
	MaxInFlight int
	// PerSourceRate is the most UDP messages per second taken from one source IP (all its
	// ports together); excess is dropped and counted. 0 = unlimited. The topology's own
	// addresses (a front door forwarding to its Front Ends) are never limited.
	PerSourceRate int
	// MaxConnsPerIP bounds TCP/TLS connections from one IP (DefaultMaxConnsPerIP unless set;
	// 0 = unlimited). The topology's own addresses are never limited.
	MaxConnsPerIP int
	// MessageTimeout bounds how long one message may take to arrive on a TCP/TLS connection,
	// from its first byte (or from the connection's start, for a TLS handshake): a connection
	// that trickles a message (slowloris) is closed after it, not after the idle timeout.
	MessageTimeout time.Duration
	// MaxHeaders, MaxHeaderBytes, MaxURIBytes and MaxBodyBytes bound a request: its header
	// fields, the size of one of them, the size of any URI it carries (Request-URI, From, To,
	// Contact), and its body. Beyond them it is refused: 400, or 413 for the body. A request
	// is also bounded by the transport (64 KiB).
	MaxHeaders, MaxHeaderBytes, MaxURIBytes, MaxBodyBytes int
}

// Fabric holds the pool fabric's timers.
type Fabric struct {
	// FailureDetection is how long the fabric takes to notice a crashed Front End.
	FailureDetection time.Duration
	// QuorumLossShutdown is how long Front Ends keep running after pool-level quorum is lost
	// before they stop all services.
	QuorumLossShutdown time.Duration
}

// Answers of a backup pool to a home pool's user before the resiliency timer expires.
const (
	Before503  = "503"  // 503 Service Unavailable with Retry-After and ms-diagnostics
	Before480  = "480"  // 480 Temporarily Unavailable with Retry-After and ms-diagnostics
	BeforeDrop = "drop" // no answer at all
)

// Pairing holds the disaster-recovery settings shared by paired pools.
type Pairing struct {
	// Heartbeat is how often paired pools check each other.
	Heartbeat time.Duration
	// BeforeTimer is how a backup pool answers a home pool's user before the resiliency timer
	// expired: Before503 (default), Before480 or BeforeDrop.
	BeforeTimer string
	// FailoverWait and FailbackWait are the default -WaitTime of Invoke-CsPoolFailOver (the data
	// sync of a planned failover) and of Invoke-CsPoolFailBack.
	FailoverWait, FailbackWait time.Duration
	// FailbackUsers per FailbackPer is the pace at which failback moves signed-in users home
	// (20,000 per 60 minutes by default, as Microsoft documents).
	FailbackUsers int
	FailbackPer   time.Duration
	// SurvivableAfter is how long a Back End outage lasts before the pool's users drop to
	// resiliency mode (survivable mode).
	SurvivableAfter time.Duration
}

// InMemory is the Back End path that keeps nothing across restarts.
const InMemory = ":memory:"

// Pool is a Front End pool.
type Pool struct {
	Index         int
	FQDN          string
	Edition       string
	Backup        string // FQDN of the backup pool, "" when none
	RoutingGroups int
	FrontEnds     []*FrontEnd // topology order = "first servers"
	FrontDoor     *FrontDoor  // nil when the pool has none
	// ResiliencyTimer is the failure detection interval: how long the backup pool must miss
	// this pool's heartbeat before it serves this pool's users (in resiliency mode).
	ResiliencyTimer time.Duration
	// BackEndPath is the SQLite file of the pool's Back End, or InMemory.
	BackEndPath string
}

// FrontEnd is one Front End server.
type FrontEnd struct {
	Pool    *Pool
	Index   int // position in the pool: 0 is the first server
	FQDN    string
	Address netip.Addr
	Ports   Ports
}

// Ports of a listener set; 0 means not served, except for PortEphemeral.
type Ports struct {
	UDP, TCP, TLS int
}

// PortEphemeral asks the OS for a port (tests). Such a port is shared by UDP and TCP when both
// are ephemeral, and is reported by the admin API once bound.
const PortEphemeral = -1

// Has reports whether the transport is served.
func (p Ports) Has(transport string) bool { return p.Port(transport) != 0 }

// Port returns the configured port for a transport (0 = not served).
func (p Ports) Port(transport string) int {
	switch transport {
	case UDP:
		return p.UDP
	case TCP:
		return p.TCP
	case TLS:
		return p.TLS
	}
	return 0
}

// FrontDoor is a pool's front door: the address its FQDN resolves to (DNS load balancing or a
// Director), which redirects or proxies REGISTERs to the user's current registrar.
type FrontDoor struct {
	Pool    *Pool
	FQDN    string
	Address netip.Addr
	Ports   Ports
	Mode    string
}

// Pool returns the pool with this FQDN (case-insensitive), or nil.
func (t *Topology) Pool(fqdn string) *Pool {
	for _, p := range t.Pools {
		if strings.EqualFold(p.FQDN, fqdn) {
			return p
		}
	}
	return nil
}

// FrontEnd returns the Front End with this FQDN (case-insensitive), or nil.
func (t *Topology) FrontEnd(fqdn string) *FrontEnd {
	for _, p := range t.Pools {
		for _, fe := range p.FrontEnds {
			if strings.EqualFold(fe.FQDN, fqdn) {
				return fe
			}
		}
	}
	return nil
}

// FrontEndAddresses returns the addresses of the pool's Front Ends.
func (p *Pool) FrontEndAddresses() []netip.Addr {
	out := make([]netip.Addr, 0, len(p.FrontEnds))
	for _, fe := range p.FrontEnds {
		out = append(out, fe.Address)
	}
	return out
}

// Addresses returns every address the topology's listeners bind: Front Ends and front doors.
func (t *Topology) Addresses() []netip.Addr {
	var out []netip.Addr
	for _, p := range t.Pools {
		out = append(out, p.FrontEndAddresses()...)
		if p.FrontDoor != nil {
			out = append(out, p.FrontDoor.Address)
		}
	}
	return out
}

// BackupOf returns the pool's backup pool, or nil.
func (t *Topology) BackupOf(p *Pool) *Pool {
	if p.Backup == "" {
		return nil
	}
	return t.Pool(p.Backup)
}

// ErrNotFound is returned by Load when the file does not exist.
var ErrNotFound = errors.New("topology file not found")

// Load reads and validates a topology file; path "" loads the embedded default. A file larger
// than MaxFileBytes is refused before it is read.
func Load(path string) (*Topology, error) {
	if path == "" {
		return Parse(configs.DefaultTopologyName, configs.DefaultTopology)
	}
	data, err := ReadFile(path)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		return nil, fmt.Errorf("read topology: %w", err)
	}
	return Parse(path, data)
}

// Default returns the embedded default topology. It panics only if the shipped file is broken,
// which a test guards against.
func Default() *Topology {
	t, err := Load("")
	if err != nil {
		panic(fmt.Sprintf("embedded default topology is invalid: %v", err))
	}
	return t
}
