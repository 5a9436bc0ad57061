package scenario

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fepool/fepool/registrar/topology"
)

// A scenario file is bounded as a topology is (topology.ReadFile, ParseYAML): before the bounds,
// the deep ones took 5-21 s and 1.7-3.8 GB in the YAML parser and the alias bomb ran out of
// memory past 6 GB.
func TestRefusedScenarioInputs(t *testing.T) {
	bomb := func() string {
		var b strings.Builder
		b.WriteString(`a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]` + "\n")
		for i := 1; i < 10; i++ {
			refs := strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 8) + fmt.Sprintf("*a%d", i-1)
			fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, refs)
		}
		return b.String() + "description: *a9\n"
	}
	padding := strings.Repeat("# "+strings.Repeat("x", 77)+"\n", topology.MaxFileBytes/80+1)
	for _, tc := range []struct {
		name, src string
		is        error
		want      string // after the file's path
		also      string
	}{
		{"too large", good + padding, topology.ErrTooLarge,
			fmt.Sprintf(": is %d bytes; a topology or scenario file may have at most 1048576 bytes (1 MiB)", len(good+padding)), ""},
		{"too deep in flow style", "name: " + strings.Repeat("[", 50_000) + strings.Repeat("]", 50_000) + "\n", topology.ErrTooDeep,
			":1:38: collections nest more than 32 deep here", ""},
		{"too deep in block style", "steps:\n" + strings.Repeat("- ", 33_000) + "x\n", topology.ErrTooDeep,
			":2:63: collections nest more than 32 deep here", ""},
		{"alias bomb", bomb(), topology.ErrTooLarge,
			":5:10: aliases expand the file by more than 10000 nodes", ""},
		{"huge user range in its topology", "topology: big.yaml\n" + good, topology.ErrTooManyUsers,
			": topology: ", "big.yaml:6:17: users[0].range: 10000000 users would need about 53710 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "s.yaml")
			top := `
domain: contoso.com
pools:
  - {fqdn: pool-a.contoso.com, backup: pool-b.contoso.com, edition: standard, front_ends: [{address: 127.0.1.1}]}
  - {fqdn: pool-b.contoso.com, backup: pool-a.contoso.com, edition: standard, front_ends: [{address: 127.0.2.1}]}
users: [{range: "user{0000000..9999999}@contoso.com", pool: pool-a.contoso.com, password: x}]
`
			for name, src := range map[string]string{path: tc.src, filepath.Join(dir, "big.yaml"): top} {
				if err := os.WriteFile(name, []byte(src), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, loadErr := Load(path, nil)
			if s != nil {
				t.Fatalf("Load accepted it: %+v", s)
			}
			s, parseErr := Parse(path, []byte(tc.src), nil)
			if s != nil {
				t.Fatalf("Parse accepted it: %+v", s)
			}
			for call, err := range map[string]error{"Load": loadErr, "Parse": parseErr} {
				if msg := fmt.Sprint(err); !strings.Contains(msg, path+tc.want) || !strings.Contains(msg, tc.also) {
					t.Errorf("%s: error\n%.300s\nwant it to contain %q and %q", call, msg, path+tc.want, tc.also)
				}
				if !errors.Is(err, tc.is) {
					t.Errorf("%s: errors.Is(err, %v) = false: %v", call, tc.is, err)
				}
			}
		})
	}
}
