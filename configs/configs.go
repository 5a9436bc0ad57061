// Package configs holds fepool's shipped configuration files and embeds the default topology, so the
// binary runs with no file at all. Every topology file here is loaded by a test in registrar/topology.
package configs

import _ "embed"

// DefaultTopology is configs/default.yaml: two paired pools of three Front Ends, 20,000 users.
//
//go:embed default.yaml
var DefaultTopology []byte

// DefaultTopologyName names the embedded default in error messages and in `serve --check`.
const DefaultTopologyName = "embedded default (configs/default.yaml)"
