package topology

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/fepool/fepool/configs"
)

// The file's shape. Pointers and Duration distinguish "absent" from zero so defaults apply.
type fileTopology struct {
	Domain       string      `yaml:"domain"`
	Realm        string      `yaml:"realm"`
	ServerHeader string      `yaml:"server_header"`
	Admin        fileAdmin   `yaml:"admin"`
	SIP          fileSIP     `yaml:"sip"`
	Fabric       fileFabric  `yaml:"fabric"`
	Pairing      filePairing `yaml:"pairing"`
	BackEnd      fileBackEnd `yaml:"back_end"`
	Pools        []filePool  `yaml:"pools"`
	Users        []fileUsers `yaml:"users"`
}

type fileAdmin struct {
	Listen string `yaml:"listen"`
	Token  string `yaml:"token"`
}

type fileExpires struct {
	Min     Duration `yaml:"min"`
	Max     Duration `yaml:"max"`
	Default Duration `yaml:"default"`
}

type fileTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

type fileLimits struct {
	MaxInFlight    *int     `yaml:"max_in_flight"`
	PerSourceRate  *int     `yaml:"per_source_rate"`
	MaxConnsPerIP  *int     `yaml:"max_conns_per_ip"`
	MessageTimeout Duration `yaml:"message_timeout"`
	MaxHeaders     *int     `yaml:"max_headers"`
	MaxHeaderBytes *int     `yaml:"max_header_bytes"`
	MaxURIBytes    *int     `yaml:"max_uri_bytes"`
	MaxBodyBytes   *int     `yaml:"max_body_bytes"`
}

type fileSIP struct {
	Expires          fileExpires `yaml:"expires"`
	MaxEndpoints     *int        `yaml:"max_endpoints"`
	KeepAliveTimeout Duration    `yaml:"keepalive_timeout"`
	TCPIdleTimeout   Duration    `yaml:"tcp_idle_timeout"`
	NonceLifetime    Duration    `yaml:"nonce_lifetime"`
	DigestAlgorithms []string    `yaml:"digest_algorithms"`
	RetryAfter       Duration    `yaml:"retry_after"`
	TLS              fileTLS     `yaml:"tls"`
	Limits           fileLimits  `yaml:"limits"`

	RevealUnknownUsers bool `yaml:"reveal_unknown_users"`
}

type fileFabric struct {
	FailureDetection   Duration `yaml:"failure_detection"`
	QuorumLossShutdown Duration `yaml:"quorum_loss_shutdown"`
}

type filePairing struct {
	Heartbeat    Duration  `yaml:"heartbeat"`
	BeforeTimer  string    `yaml:"before_timer"`
	FailoverWait Duration  `yaml:"failover_wait"`
	FailbackWait Duration  `yaml:"failback_wait"`
	FailbackPace *filePace `yaml:"failback_pace"`
}

type filePace struct {
	Users *int     `yaml:"users"`
	Per   Duration `yaml:"per"`
}

type fileBackEnd struct {
	SurvivableAfter Duration `yaml:"survivable_after"`
}

type filePoolBackEnd struct {
	Path string `yaml:"path"`
}

// PortsFile is the YAML shape of a listener's ports (exported only so the decoder can inline it).
type PortsFile struct {
	UDP *int `yaml:"udp"`
	TCP *int `yaml:"tcp"`
	TLS *int `yaml:"tls"`
}

type filePool struct {
	FQDN            string           `yaml:"fqdn"`
	Edition         string           `yaml:"edition"`
	Backup          string           `yaml:"backup"`
	RoutingGroups   *int             `yaml:"routing_groups"`
	Ports           *PortsFile       `yaml:"ports"`
	FrontDoor       *fileFrontDoor   `yaml:"front_door"`
	FrontEnds       []fileFrontEnd   `yaml:"front_ends"`
	ResiliencyTimer Duration         `yaml:"resiliency_timer"`
	BackEnd         *filePoolBackEnd `yaml:"back_end"`
}

type fileFrontEnd struct {
	FQDN      string `yaml:"fqdn"`
	Address   string `yaml:"address"`
	PortsFile `yaml:",inline"`
}

type fileFrontDoor struct {
	FQDN      string `yaml:"fqdn"`
	Address   string `yaml:"address"`
	Mode      string `yaml:"mode"`
	PortsFile `yaml:",inline"`
}

type fileUsers struct {
	URI      string `yaml:"uri"`
	Range    string `yaml:"range"`
	Pool     string `yaml:"pool"`
	Password string `yaml:"password"`
	Auth     string `yaml:"auth"`
}

// Duration is a YAML duration such as "120s" or "5m". It keeps the raw text so that a bad value
// is reported with its line by validation (the YAML decoder drops positions for such errors).
type Duration struct {
	raw string
	set bool
}

// UnmarshalYAML implements yaml.BytesUnmarshaler.
func (d *Duration) UnmarshalYAML(b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return err
	}
	d.raw, d.set = strings.TrimSpace(s), true
	return nil
}

// Error is one problem in a topology, located in its file.
type Error struct {
	File   string
	Line   int // 0 when unknown
	Column int
	Field  string // YAML path such as pools[0].front_ends[1].address
	Msg    string
	Err    error // a sentinel such as ErrTooLarge, when one applies
}

// Unwrap returns the sentinel, if any, so that errors.Is works.
func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// yamlError is what goccy/go-yaml's positioned errors offer.
type yamlError interface {
	GetToken() *token.Token
	GetMessage() string
}

var typeMismatch = regexp.MustCompile(`^cannot unmarshal (.+) into Go (?:struct field|value) \S* ?of type (.+)$`)

// friendlyDecodeMessage rewrites the decoder's Go-typed messages in YAML words.
func friendlyDecodeMessage(msg string) string {
	m := typeMismatch.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	word := func(goType string) string {
		switch {
		case strings.HasPrefix(goType, "[]"):
			return "a list"
		case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "topology."), strings.HasPrefix(goType, "struct"):
			return "a mapping"
		case goType == "string":
			return "a string"
		case strings.Contains(goType, "int"), strings.Contains(goType, "float"), strings.Contains(goType, "uint"):
			return "a number"
		case goType == "bool":
			return "true or false"
		}
		return goType
	}
	return fmt.Sprintf("wrong type: want %s, got %s", word(m[2]), word(m[1]))
}

// DecodeError turns a strict YAML decoding error of file name into an *Error with its line and
// column and a message in YAML words (other YAML files of fepool, such as load scenarios, use
// it too).
func DecodeError(name string, err error) *Error {
	e := &Error{File: name}
	var ye yamlError
	if !errors.As(err, &ye) {
		e.Msg = err.Error()
		return e
	}
	// Not ye.Error(): goccy formats the source around the error by concatenating each token of
	// the line, quadratic in its length (a 1 MB line with an unknown field took 2-4 minutes).
	e.Msg = friendlyDecodeMessage(ye.GetMessage())
	if tk := ye.GetToken(); tk != nil && tk.Position != nil {
		e.Line, e.Column = tk.Position.Line, tk.Position.Column
	}
	return e
}

// Locate finds the line and column of a YAML path such as "steps[3].failover.pool" in a parsed
// file (0, 0 when it is not there).
func Locate(file *ast.File, path string) (line, column int) {
	p, err := yaml.PathString("$." + path)
	if err != nil {
		return 0, 0
	}
	n, err := p.FilterFile(file)
	if err != nil || n == nil {
		return 0, 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line, tk.Position.Column
	}
	return 0, 0
}

// Parse decodes and validates a topology; name labels errors (usually the file path). Data
// beyond the bounds ParseYAML checks is refused before it is decoded.
func Parse(name string, data []byte) (*Topology, error) {
	file, err := ParseYAML(name, data)
	if err != nil {
		return nil, err
	}
	var f fileTopology
	if err := Decode(name, file, &f); err != nil {
		return nil, err
	}
	v := &validator{name: name, ast: file}
	if name != configs.DefaultTopologyName {
		v.dir = filepath.Dir(name)
	}
	t := v.resolve(&f)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	t.Source = name
	return t, nil
}

// validator resolves the file into a Topology, collecting every error with its position.
type validator struct {
	name string
	dir  string // the file's directory, for relative Back End paths ("" for the embedded default)
	ast  *ast.File
	errs []error

	tooManyUsers bool // reported once
}

// fail records an error at a YAML path like "pools[0].fqdn".
func (v *validator) fail(path string, format string, args ...any) {
	e := &Error{File: v.name, Field: path, Msg: fmt.Sprintf(format, args...)}
	e.Line, e.Column = Locate(v.ast, path)
	v.errs = append(v.errs, e)
}

// duration parses d, falling back to def when absent; it must lie in [lo, hi].
func (v *validator) duration(path string, d Duration, def, lo, hi time.Duration) time.Duration {
	if !d.set {
		return def
	}
	x, err := time.ParseDuration(d.raw)
	if err != nil {
		v.fail(path, "%q is not a duration (use a number with a unit, such as 120s, 5m or 1h)", d.raw)
		return def
	}
	if x < lo || x > hi {
		v.fail(path, "%s is out of range [%s, %s]", x, lo, hi)
		return def
	}
	return x
}

// intValue returns *p or def, checking [lo, hi].
func (v *validator) intValue(path string, p *int, def, lo, hi int) int {
	if p == nil {
		return def
	}
	if *p < lo || *p > hi {
		v.fail(path, "%d is out of range [%d, %d]", *p, lo, hi)
		return def
	}
	return *p
}
