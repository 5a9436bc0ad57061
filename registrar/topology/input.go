package topology

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Bounds on the YAML files fepool reads (topologies and load scenarios), checked before the
// YAML decoder sees a file. goccy/go-yaml's parser costs memory quadratic in nesting depth (each
// node keeps its path from the root): measured, a 100 KB file of nested flow sequences took 14 s
// and 3.8 GB before the decoder's own depth limit (10,000) refused it without a line, and 9
// levels of 9 aliases ("billion laughs", 490 bytes) ran out of memory past 6 GB, because the
// decoder expands each alias again. What the shipped files need is far below each bound.
const (
	// MaxFileBytes is the largest topology or scenario file: the shipped ones are under 4 KB,
	// and Lync's largest topology (2 pools of 12 Front Ends, user ranges) is about 3 KB; 15,000
	// explicit users fit, and load in 0.6 s and 130 MB RSS. The worst file of this size (one
	// flat list of half a million entries) is refused in about 2 s and 470 MB RSS.
	MaxFileBytes = 1 << 20
	// MaxDepth is how deeply collections (mappings and sequences, block or flow) may nest: the
	// shipped files nest 5 deep at most.
	MaxDepth = 32
	// MaxAliasNodes is how many YAML nodes aliases (*name) may add to a file in all, counting
	// each alias as the nodes of its anchor, expanded: sharing a few Front End port blocks
	// takes tens.
	MaxAliasNodes = 10_000
)

var (
	// ErrTooLarge: a file larger than MaxFileBytes, or aliases expanding past MaxAliasNodes.
	ErrTooLarge = errors.New("input too large")
	// ErrTooDeep: collections nested deeper than MaxDepth.
	ErrTooDeep = errors.New("input nested too deeply")
)

// ReadFile reads a topology or scenario file, refusing one larger than MaxFileBytes before
// reading it. The read itself is bounded too, for a file that grows meanwhile and for one whose
// size stat cannot tell (a pipe, /dev/zero). Errors from the file system are wrapped.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileBytes {
		return nil, tooLarge(path, fmt.Sprintf("is %d bytes", st.Size()))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, tooLarge(path, fmt.Sprintf("has more than %d bytes", MaxFileBytes))
	}
	return data, nil
}

func tooLarge(name, what string) *Error {
	return &Error{File: name, Err: ErrTooLarge,
		Msg: fmt.Sprintf("%s; a topology or scenario file may have at most %d bytes (1 MiB)", what, MaxFileBytes)}
}

// ParseYAML checks that data (the file name) is within the bounds above and returns its syntax
// tree: it refuses a file larger than MaxFileBytes, nesting deeper than MaxDepth (on the
// tokens, before the parser sees them) and aliases adding more than MaxAliasNodes nodes (on
// the tree, before a decoder expands them), each with its line where there is one. Decode the
// data only once it has passed. Syntax errors come back as DecodeError makes them.
func ParseYAML(name string, data []byte) (*ast.File, error) {
	if len(data) > MaxFileBytes {
		return nil, tooLarge(name, fmt.Sprintf("is %d bytes", len(data)))
	}
	// The lexer is linear: 28 MB and 0.2 s for 100 KB of "[", where the parser took 3.8 GB.
	tokens := lexer.Tokenize(string(data))
	if tk := tooDeep(tokens); tk != nil {
		return nil, &Error{File: name, Line: tk.Position.Line, Column: tk.Position.Column, Err: ErrTooDeep,
			Msg: fmt.Sprintf("collections nest more than %d deep here; a topology or scenario needs far fewer", MaxDepth)}
	}
	file, err := parser.Parse(tokens, 0)
	if err != nil {
		return nil, DecodeError(name, err)
	}
	a := aliases{sizes: map[string]int{}}
	for _, doc := range file.Docs {
		if doc.Body == nil {
			continue
		}
		if a.size(doc.Body); a.over != nil {
			tk := a.over.GetToken()
			return nil, &Error{File: name, Line: tk.Position.Line, Column: tk.Position.Column, Err: ErrTooLarge,
				Msg: fmt.Sprintf("aliases expand the file by more than %d nodes (at most %d may come from aliases)", MaxAliasNodes, MaxAliasNodes)}
		}
	}
	return file, nil
}

// tooDeep returns the first token at which collections nest deeper than MaxDepth, or nil.
//
// Flow collections nest by brackets. Block collections nest by indentation, so they are
// tracked as a stack of the columns where each open one starts: a "- " entry or a "key:" at
// column c closes every collection opened right of c, continues the one of its kind at c, or
// opens one (a sequence may start at its parent key's column). Scalars, comments and block
// scalars cannot open anything, and the lexer has already told them apart.
func tooDeep(tokens token.Tokens) *token.Token {
	type open struct {
		col int
		seq bool
	}
	var block []open
	flow := 0
	for i, tk := range tokens {
		var col int
		seq := false
		switch tk.Type {
		case token.DocumentHeaderType, token.DocumentEndType:
			block, flow = block[:0], 0
			continue
		case token.SequenceStartType, token.MappingStartType:
			flow++
			if len(block)+flow > MaxDepth {
				return tk
			}
			continue
		case token.SequenceEndType, token.MappingEndType:
			flow = max(flow-1, 0)
			continue
		case token.SequenceEntryType:
			col, seq = tk.Position.Column, true
		case token.MappingKeyType:
			col = tk.Position.Column
		case token.MappingValueType:
			// The mapping starts where its key does: the token before ":" on the same line.
			col = tk.Position.Column
			if i > 0 && tokens[i-1].Position.Line == tk.Position.Line {
				col = tokens[i-1].Position.Column
			}
		default:
			continue
		}
		if flow > 0 {
			continue
		}
		for len(block) > 0 {
			top := block[len(block)-1]
			if top.col < col || top.col == col && (top.seq == seq || seq) {
				break
			}
			block = block[:len(block)-1]
		}
		if n := len(block); n > 0 && block[n-1].col == col && block[n-1].seq == seq {
			continue
		}
		block = append(block, open{col, seq})
		if len(block) > MaxDepth {
			return tk
		}
	}
	return nil
}

// aliases counts what aliases add to a tree, in document order as a decoder resolves them:
// an anchor's size is its value's, expanded; an alias adds its anchor's size.
type aliases struct {
	sizes map[string]int
	added int
	over  ast.Node // the alias that went past MaxAliasNodes
}

// size returns the expanded number of nodes of n, stopping at the first alias over the bound.
func (a *aliases) size(n ast.Node) int {
	total := 0
	ast.Walk(visitFunc(func(n ast.Node) bool {
		if a.over != nil {
			return false
		}
		switch n := n.(type) {
		case *ast.CommentNode, *ast.CommentGroupNode:
			return false
		case *ast.AnchorNode:
			s := 1
			if n.Value != nil {
				s = a.size(n.Value)
			}
			a.sizes[n.Name.GetToken().Value] = s
			total += s
			return false
		case *ast.AliasNode:
			s := max(a.sizes[n.Value.GetToken().Value], 1) // an unknown alias is the decoder's error
			a.added += s
			total += s
			if a.added > MaxAliasNodes {
				a.over = n
			}
			return false
		}
		total++
		return true
	}), n)
	return total
}

type visitFunc func(ast.Node) bool

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if f(n) {
		return f
	}
	return nil
}

// Decode decodes file, as ParseYAML returned it, into v strictly (unknown fields are errors),
// as yaml.UnmarshalWithOptions(data, v, yaml.Strict()) would but without lexing and parsing the
// data again: for a file at the size bound that halves the time and memory of loading it.
// Errors come back as DecodeError makes them.
func Decode(name string, file *ast.File, v any) error {
	for _, doc := range file.Docs {
		if doc.Body == nil {
			continue
		}
		if err := yaml.NodeToValue(doc.Body, v, yaml.Strict()); err != nil {
			return DecodeError(name, err)
		}
		return nil
	}
	return nil
}
