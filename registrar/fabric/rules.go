// Package fabric is the Windows Fabric of one Front End pool, as pure logic: users map to routing
// groups (RGs) by a stable hash; each RG has up to three replicas on distinct Front Ends (primary,
// primary backup, secondary backup), placed deterministically and balanced; a failed Front End's
// RGs are promoted and their missing secondaries re-placed; pool-level quorum, the cold-start
// (85%) rule and RG quorum loss decide whether users get service.
//
// Nothing here sleeps or reads a clock: every input carries the time, NextDeadline says when the
// caller must call Tick, and every change returns the events it caused. A Pool is not safe for
// concurrent use; its owner serialises calls and publishes Snapshot for lock-free readers.
package fabric

import "hash/fnv"

// MaxReplicas is the number of copies of an RG's data: one primary and two secondaries.
const MaxReplicas = 3

// QuorumRule says how many Front Ends must run for a pool of a given size to function.
type QuorumRule struct {
	Need int // Front Ends that must run
	// Among limits the count to the first Among Front Ends (the "first servers", topology order);
	// 0 means any Front End counts.
	Among int
	// WitnessBackEnd is set for two-server pools: the Back End is the third vote, so with the Back
	// End down both Front Ends must run.
	WitnessBackEnd bool
}

// PoolQuorum returns the pool-level quorum rule for a pool of total Front Ends.
//
//	total FEs | 1 | 2            | 3-4   | 5-6   | 7     | 8-9              | 10-12            | 13-16
//	must run  | 1 | 1 (+BackEnd) | any 2 | any 3 | any 4 | any 4 of first 7 | any 5 of first 9 | any 7 of first 12
func PoolQuorum(total int) QuorumRule {
	switch {
	case total <= 1:
		return QuorumRule{Need: 1}
	case total == 2:
		return QuorumRule{Need: 1, WitnessBackEnd: true}
	case total <= 4:
		return QuorumRule{Need: 2}
	case total <= 6:
		return QuorumRule{Need: 3}
	case total == 7:
		return QuorumRule{Need: 4}
	case total <= 9:
		return QuorumRule{Need: 4, Among: 7}
	case total <= 12:
		return QuorumRule{Need: 5, Among: 9}
	default:
		return QuorumRule{Need: 7, Among: 12}
	}
}

// HasPoolQuorum applies PoolQuorum to the running set (indexed in topology order).
func HasPoolQuorum(running []bool, backEndUp bool) bool {
	rule := PoolQuorum(len(running))
	need := rule.Need
	if rule.WitnessBackEnd && !backEndUp {
		need = len(running)
	}
	among := len(running)
	if rule.Among > 0 && rule.Among < among {
		among = rule.Among
	}
	n := 0
	for _, up := range running[:among] {
		if up {
			n++
		}
	}
	return n >= need
}

// coldStart is the number of Front Ends that must run before a pool starts (the 85% rule).
// 13-15 are our choice: Microsoft publishes 12 for 16 only, so those sizes round 85% and stop at 12.
var coldStart = [...]int{0, 1, 1, 3, 3, 4, 5, 5, 6, 7, 8, 9, 10, 11, 12, 12, 12}

// ColdStartNeed returns how many Front Ends must run before a pool of total starts.
func ColdStartNeed(total int) int {
	if total < 1 {
		return 1
	}
	if total >= len(coldStart) {
		return coldStart[len(coldStart)-1]
	}
	return coldStart[total]
}

// RoutingGroupOf maps a user's address of record (normalised, such as user00042@contoso.com) to
// one of count routing groups by a stable hash (FNV-1a), the same in every run and process.
func RoutingGroupOf(aor string, count int) int {
	if count <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(aor))
	return int(h.Sum32() % uint32(count))
}
