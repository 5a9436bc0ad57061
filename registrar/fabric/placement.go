package fabric

import "slices"

// fill gives every RG a running primary (if it has none and is not lost) and tops up its
// secondaries to k, choosing deterministically:
//   - a primary goes to the running Front End with the fewest primaries;
//   - the primary backup goes to the running Front End that backs this RG's primary up least
//     often, then with the fewest replicas, so a failed Front End's RGs are promoted onto many
//     Front Ends rather than one;
//   - the secondary backup goes to the running Front End with the fewest replicas;
//   - ties go to the nearest Front End in rotation after the RG's index.
//
// Front Ends that crashed but are not yet detected take no new replica.
//
// RGs that lost every replica (lost[rg] set) stay empty until a replica returns or recovery.
func (p *Pool) fill() {
	n := 0
	for fe, up := range p.running {
		if up && p.crashedAt[fe].IsZero() {
			n++
		}
	}
	if n == 0 {
		return
	}
	available := func(fe int) bool { return p.running[fe] && p.crashedAt[fe].IsZero() }
	k := p.k(n)
	fes := len(p.running)
	primaries := make([]int, fes)
	load := make([]int, fes)
	pairs := make([][]int, fes) // pairs[primary][fe]: RGs where fe is the primary's backup
	for i := range pairs {
		pairs[i] = make([]int, fes)
	}
	for _, list := range p.replicas {
		for i, fe := range list {
			load[fe]++
			switch i {
			case 0:
				primaries[fe]++
			case 1:
				pairs[list[0]][fe]++
			}
		}
	}
	rotation := func(rg, fe int) int { return ((fe-rg)%fes + fes) % fes }
	for rg := range p.replicas {
		list := p.replicas[rg]
		if len(list) == 0 {
			if len(p.lost[rg]) > 0 {
				continue
			}
			best := -1
			for fe := 0; fe < fes; fe++ {
				if !available(fe) {
					continue
				}
				if best < 0 || primaries[fe] < primaries[best] ||
					primaries[fe] == primaries[best] && rotation(rg, fe) < rotation(rg, best) {
					best = fe
				}
			}
			list = append(list, best)
			primaries[best]++
			load[best]++
		}
		for len(list) < k {
			best := -1
			for fe := 0; fe < fes; fe++ {
				if !available(fe) || slices.Contains(list, fe) {
					continue
				}
				key := func(fe int) [3]int {
					if len(list) == 1 { // the primary backup: spread first
						return [3]int{pairs[list[0]][fe], load[fe], rotation(rg, fe)}
					}
					return [3]int{load[fe], rotation(rg, fe), 0}
				}
				if best < 0 || less(key(fe), key(best)) {
					best = fe
				}
			}
			if best < 0 {
				break
			}
			if len(list) == 1 {
				pairs[list[0]][best]++
			}
			list = append(list, best)
			load[best]++
		}
		p.replicas[rg] = list
	}
}

// less compares criteria lexicographically.
func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// rebalance forgets every RG's placement among running Front Ends and places all of them again
// evenly. It returns, per RG, the old replica list so the owner can move data.
func (p *Pool) rebalance() [][]int {
	old := make([][]int, len(p.replicas))
	for rg := range p.replicas {
		old[rg] = p.replicas[rg]
		p.replicas[rg], p.lost[rg] = nil, nil
	}
	p.fill()
	return old
}
