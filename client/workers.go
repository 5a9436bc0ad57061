package client

import "time"

// workers runs the clients' timer work (sign-ins, refreshes, keep-alives) on goroutines it
// reuses. A fresh goroutine per timer would start with a minimal stack and grow it by copying
// on every sign-in (SIP building and parsing run deep): under a 20,000-client ramp that copying
// was a seventh of the load process's CPU. A worker stays for idleWorker after its last task,
// so a population's bursts reuse warm stacks and an idle population holds none.
type workers struct{ tasks chan func() }

const idleWorker = 2 * time.Second

// background runs the work of every client in the process.
var background = &workers{tasks: make(chan func())}

// run hands f to an idle worker, or starts one.
func (w *workers) run(f func()) {
	select {
	case w.tasks <- f:
	default:
		go w.work(f)
	}
}

func (w *workers) work(f func()) {
	idle := time.NewTimer(idleWorker)
	defer idle.Stop()
	for {
		f()
		idle.Reset(idleWorker)
		select {
		case f = <-w.tasks:
		case <-idle.C:
			return
		}
	}
}
