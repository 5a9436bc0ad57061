// Package configs holds fepool's shipped configuration files and embeds the default topology, so the
// binary runs with no file at all. Every topology file here is loaded by a test in registrar/topology.
package configs

import "embed"

// DefaultTopology is configs/default.yaml: two paired pools of three Front Ends, 20,000 users.
//
//go:embed default.yaml
var DefaultTopology []byte

// DefaultTopologyName names the embedded default in error messages and in `serve --check`.
const DefaultTopologyName = "embedded default (configs/default.yaml)"

// Scenarios holds the shipped load scenarios (scenarios/*.yaml); `fepool load --scenario NAME`
// finds them by name.
//
//go:embed scenarios/*.yaml
var Scenarios embed.FS

// Topologies holds the shipped topology files (*.yaml), for scenarios that name one.
//
//go:embed *.yaml
var Topologies embed.FS
