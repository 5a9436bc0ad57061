package loadgen_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fepool/fepool/loadgen"
)

// TestSetRealtime runs SetRealtime in a child process (the test process itself must not run
// under a real-time policy) and checks there that every thread has SCHED_RR, those the runtime
// started before the call and those it started after.
func TestSetRealtime(t *testing.T) {
	if os.Getenv("FEPOOL_TEST_REALTIME_CHILD") == "1" {
		realtimeChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSetRealtime$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FEPOOL_TEST_REALTIME_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	switch s := string(out); {
	case strings.Contains(s, "REFUSED"):
		t.Skip("the kernel does not permit real-time scheduling here (no CAP_SYS_NICE, RLIMIT_RTPRIO 0)")
	case !strings.Contains(s, "ALL SCHED_RR"):
		t.Fatalf("child:\n%s", s)
	}
}

// realtimeChild prints what it found; the parent judges.
func realtimeChild() {
	err := loadgen.SetRealtime()
	if errors.Is(err, loadgen.ErrRealtimeRefused) {
		fmt.Println("REFUSED")
		return
	}
	if err != nil {
		fmt.Println("ERROR", err)
		return
	}
	// Threads started now take the policy of the thread that starts them.
	var wg sync.WaitGroup
	ready, release := make(chan struct{}), make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // keeps this thread to itself: others must start
			ready <- struct{}{}
			<-release
		}()
	}
	for range 4 {
		<-ready
	}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		fmt.Println("ERROR", err)
		return
	}
	bad := 0
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		a, err := unix.SchedGetAttr(tid, 0)
		if err == nil && a.Policy != unix.SCHED_RR {
			fmt.Printf("thread %d: policy %d\n", tid, a.Policy)
			bad++
		}
	}
	close(release)
	wg.Wait()
	if bad == 0 && len(ents) > 4 {
		fmt.Printf("ALL SCHED_RR (%d threads)\n", len(ents))
	}
}
