package registrar_test

import (
	"testing"

	"github.com/fepool/fepool/registrar/frontend"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

// BenchmarkRoute is the routing decision every REGISTER takes on a Front End (the user's
// primary, both pools up: the common case).
func BenchmarkRoute(b *testing.B) {
	env := rt.Start(b, rt.Topology)
	u, _ := env.Top.LookupUser(alice)
	self := env.Top.FrontEnd(env.Primary(b, alice))
	if r := env.R.Route(self, u, "UDP"); r.Kind != frontend.Serve {
		b.Fatalf("route %+v", r)
	}
	b.ReportAllocs()
	for b.Loop() {
		env.R.Route(self, u, "UDP")
	}
}
