package topology

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// Hostile inputs, each about what the issue measured (100 KB) or at the bound: before the
// bounds, the deep ones took 5-21 s and 1.7-3.8 GB in goccy's parser, the alias bomb ran out of
// memory past 6 GB, the long line took minutes to format its error, and the range was accepted.

// deepFlowSeq is "domain: [[[...]]]", 100 KB.
func deepFlowSeq() string {
	return "domain: " + strings.Repeat("[", 50_000) + strings.Repeat("]", 50_000) + "\n"
}

// deepFlowMap is "domain: {a: {a: ...}}", 100 KB.
func deepFlowMap() string {
	return "domain: " + strings.Repeat("{a: ", 20_000) + "1" + strings.Repeat("}", 20_000) + "\n"
}

// deepBlockMap is block mappings indented one column per level, 100 KB (446 levels).
func deepBlockMap() string {
	var b strings.Builder
	b.WriteString("domain:\n")
	for d := 1; b.Len() < 100_000; d++ {
		b.WriteString(strings.Repeat(" ", d) + "a:\n")
	}
	return b.String()
}

// deepBlockSeq is block sequences opened on one line ("- - - ... x"), 66 KB.
func deepBlockSeq() string {
	return "domain:\n" + strings.Repeat("- ", 33_000) + "x\n"
}

// aliasBomb is "billion laughs": 9 levels of 9 aliases, 9^9 strings from 500 bytes.
func aliasBomb(key string) string {
	var b strings.Builder
	b.WriteString(`a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]` + "\n")
	for i := 1; i < 10; i++ {
		refs := strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 8) + fmt.Sprintf("*a%d", i-1)
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, refs)
	}
	b.WriteString(key + ": *a9\n")
	return b.String()
}

// longLine is an unknown field whose value is one line of 0.9 MB.
func longLine(key string) string {
	return key + ": [" + strings.Repeat("a,", 450_000) + "a]\n"
}

// padded is src with comment lines until it is n bytes.
func padded(src string, n int) string {
	line := "# " + strings.Repeat("x", 77) + "\n"
	var b strings.Builder
	b.WriteString(src)
	for b.Len()+len(line) <= n {
		b.WriteString(line)
	}
	b.WriteString(strings.Repeat("#", n-b.Len()))
	return b.String()
}

// Inputs that could take the host down are refused early, by Load (which reads the file) and
// by Parse (given the bytes), with the line where there is one.
func TestRefusedInputs(t *testing.T) {
	hugeRange := strings.Replace(good, "user{00000..00099}", "user{0000000..9999999}", 1)
	for _, tc := range []struct {
		name, src string
		is        error
		want      string // after the file name
	}{
		{"too large", padded(good, MaxFileBytes+1), ErrTooLarge,
			": is 1048577 bytes; a topology or scenario file may have at most 1048576 bytes (1 MiB)"},
		{"too deep in flow sequences", deepFlowSeq(), ErrTooDeep,
			":1:40: collections nest more than 32 deep here"},
		{"too deep in flow mappings", deepFlowMap(), ErrTooDeep,
			":1:133: collections nest more than 32 deep here"},
		{"too deep in block mappings", deepBlockMap(), ErrTooDeep,
			":33:34: collections nest more than 32 deep here"},
		{"too deep in block sequences", deepBlockSeq(), ErrTooDeep,
			":2:63: collections nest more than 32 deep here"},
		{"alias bomb", aliasBomb("domain"), ErrTooLarge,
			":5:10: aliases expand the file by more than 10000 nodes (at most 10000 may come from aliases)"},
		{"unknown field on a long line", longLine("bogus"), nil,
			`:1:1: unknown field "bogus"`},
		{"huge user range", hugeRange, ErrTooManyUsers,
			":13:12: users[0].range: 10000000 users would need about 53710 MiB of emulator memory signed in (5.5 KiB each); the maximum is 1000000 users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "test.yaml")
			if err := os.WriteFile(path, []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			loaded, err := Load(path)
			check(t, "Load", path, loaded, err, tc.want, tc.is)
			parsed, err := Parse("test.yaml", []byte(tc.src))
			check(t, "Parse", "test.yaml", parsed, err, tc.want, tc.is)
		})
	}
}

func check(t *testing.T, call, name string, top *Topology, err error, want string, is error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s accepted it (%d users)", call, top.Users.Count())
	}
	if !strings.HasPrefix(err.Error(), name+want) {
		t.Fatalf("%s: error\n%.300s\nwant it to start with %q", call, err, name+want)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("%s: errors.Is(err, %v) = false", call, is)
	}
}

// Aliases within the bound still work, and Lync's largest user count fits.
func TestBoundsLeaveRoom(t *testing.T) {
	src := strings.Replace(good, "    backup: pool-b.contoso.com\n", "    backup: pool-b.contoso.com\n    ports: &ports {udp: 5070, tcp: 5070, tls: 5071}\n", 1)
	src = strings.Replace(src, "  - fqdn: pool-b.contoso.com\n", "  - fqdn: pool-b.contoso.com\n    ports: *ports\n", 1)
	src = strings.Replace(src, "user{00000..00099}", "user{000000..159999}", 1)
	top := mustParse(t, src)
	if p := top.Pool("pool-b.contoso.com").FrontEnds[0].Ports; p != (Ports{5070, 5070, 5071}) {
		t.Errorf("ports through an alias = %+v", p)
	}
	if n := top.Users.Count(); n != 160_000 {
		t.Errorf("users = %d", n)
	}
	exact := strings.Replace(good, "user{00000..00099}", fmt.Sprintf("user{1..%d}", MaxUsers), 1)
	if top := mustParse(t, exact); top.Users.Count() != MaxUsers {
		t.Errorf("users = %d, want %d", top.Users.Count(), MaxUsers)
	}
	if _, err := Parse("test.yaml", []byte(padded(good, MaxFileBytes))); err != nil {
		t.Errorf("a file of exactly MaxFileBytes: %v", err)
	}
}

// Users past the maximum are reported once, where the count crosses it.
func TestTooManyUsersReportedOnce(t *testing.T) {
	src := strings.Replace(good, "user{00000..00099}", fmt.Sprintf("user{1..%d}", MaxUsers), 1) +
		"  - {uri: sip:alice@contoso.com, pool: pool-a.contoso.com, auth: none}\n" +
		"  - {uri: sip:bob@contoso.com, pool: pool-a.contoso.com, auth: none}\n"
	_, err := Parse("test.yaml", []byte(src))
	if !errors.Is(err, ErrTooManyUsers) || strings.Count(err.Error(), "users would need") != 1 ||
		!strings.HasPrefix(err.Error(), "test.yaml:16:11: users[1].uri: 1000001 users would need about 5371 MiB") {
		t.Fatalf("err = %v", err)
	}
}

// A source that does not say its size (a pipe, a device) is still read only up to the bound.
func TestLoadBoundsUnsizedSources(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	_, err := Load("/dev/zero")
	if !errors.Is(err, ErrTooLarge) || !strings.HasPrefix(err.Error(), "/dev/zero: has more than 1048576 bytes") {
		t.Fatalf("err = %v", err)
	}
}

// What refusing each hostile input costs: run with -bench Refused -benchmem.
func BenchmarkRefused(b *testing.B) {
	for _, bc := range []struct{ name, src string }{
		{"too-large", padded(good, MaxFileBytes+1)},
		{"flow-seq-100KB", deepFlowSeq()},
		{"flow-map-100KB", deepFlowMap()},
		{"block-map-100KB", deepBlockMap()},
		{"block-seq-66KB", deepBlockSeq()},
		{"alias-bomb", aliasBomb("domain")},
		{"long-line-900KB", longLine("bogus")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse("test.yaml", []byte(bc.src)); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// The nesting count agrees with the real depth of what YAML's own encoder writes, in block and
// in flow style, with and without indented sequences: a file exactly MaxDepth deep passes and
// one level more is refused.
func TestDepthMatchesEncoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// nest builds a value of exactly depth collections, with a random mapping or sequence at
	// each level and scalars or shallower collections beside the deep path.
	var nest func(depth int) any
	nest = func(depth int) any {
		if depth == 0 {
			return "v"
		}
		var sibling any = "s"
		if depth > 1 && rng.IntN(3) == 0 {
			sibling = nest(rng.IntN(depth - 1))
		}
		deep := nest(depth - 1)
		if rng.IntN(2) == 0 {
			return []any{sibling, deep, "t"}
		}
		return map[string]any{"a": sibling, "b": deep, "c": "t"}
	}
	for _, style := range []struct {
		name string
		opts []yaml.EncodeOption
	}{
		{"block", nil},
		{"block, indented sequences", []yaml.EncodeOption{yaml.IndentSequence(true)}},
		{"flow", []yaml.EncodeOption{yaml.Flow(true)}},
	} {
		for range 20 {
			for _, depth := range []int{MaxDepth, MaxDepth + 1} {
				src, err := yaml.MarshalWithOptions(nest(depth), style.opts...)
				if err != nil {
					t.Fatal(err)
				}
				_, err = ParseYAML("t.yaml", src)
				if refused := errors.Is(err, ErrTooDeep); refused != (depth > MaxDepth) || err != nil && !refused {
					t.Fatalf("%s, depth %d: err = %v\n%.400s", style.name, depth, err, src)
				}
			}
		}
	}
}
