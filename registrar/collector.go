package registrar

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fepool/fepool/registrar/fabric"
)

// collector exposes the registrar's state at scrape time.
type collector struct{ r *Registrar }

var (
	descPoolState  = prometheus.NewDesc("fepool_pool_fabric_state", "1 for the pool's current fabric state (Stopped, Starting, Started, QuorumLost).", []string{"pool", "state"}, nil)
	descFEState    = prometheus.NewDesc("fepool_frontend_state", "1 for the Front End's current state (Stopped, Starting, Started, Failed).", []string{"pool", "frontend", "state"}, nil)
	descRegistered = prometheus.NewDesc("fepool_registrations", "Users with at least one registered endpoint, held by their routing group's primary.", []string{"pool"}, nil)
	descEndpoints  = prometheus.NewDesc("fepool_registered_endpoints", "Registered endpoints (bindings), held by their routing group's primary.", []string{"pool"}, nil)
	descMissing    = prometheus.NewDesc("fepool_routing_groups_missing_replicas", "Routing groups with fewer replicas than the pool can hold (0 replicas: users get 503).", []string{"pool"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPoolState, descFEState, descRegistered, descEndpoints, descMissing} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pools {
		snap := p.fabric.Snapshot()
		for _, st := range []fabric.State{fabric.Stopped, fabric.Starting, fabric.Started, fabric.QuorumLost} {
			ch <- prometheus.MustNewConstMetric(descPoolState, prometheus.GaugeValue, b2f(snap.State == st), p.top.FQDN, st.String())
		}
		for _, f := range p.fes {
			cur := r.feState(f)
			for _, st := range []string{StateStopped, StateStarting, StateStarted, StateFailed} {
				ch <- prometheus.MustNewConstMetric(descFEState, prometheus.GaugeValue, b2f(cur == st), p.top.FQDN, f.top.FQDN, st)
			}
		}
		users, endpoints := r.registeredLocked(p, snap)
		ch <- prometheus.MustNewConstMetric(descRegistered, prometheus.GaugeValue, float64(users), p.top.FQDN)
		ch <- prometheus.MustNewConstMetric(descEndpoints, prometheus.GaugeValue, float64(endpoints), p.top.FQDN)
		ch <- prometheus.MustNewConstMetric(descMissing, prometheus.GaugeValue, float64(snap.MissingReplicas(min(fabric.MaxReplicas, len(p.fes)))), p.top.FQDN)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
