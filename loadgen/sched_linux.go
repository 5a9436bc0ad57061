package loadgen

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setRealtime puts every thread of the process under SCHED_RR at priority 1. Linux keeps a
// policy per thread and a new thread takes its creator's, so once every thread has it, the
// threads the Go runtime starts later have it too. Threads started while the list is walked are
// caught by walking it again until a walk finds none left.
func setRealtime() error {
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_RR, Priority: 1}
	done := map[int]bool{}
	for {
		tids, err := threads()
		if err != nil {
			return err
		}
		changed := false
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			err := unix.SchedSetAttr(tid, attr, 0)
			switch {
			case errors.Is(err, unix.ESRCH): // the thread ended meanwhile
			case errors.Is(err, unix.EPERM):
				return ErrRealtimeRefused
			case err != nil:
				return fmt.Errorf("sched_setattr: %w", err)
			}
			done[tid], changed = true, true
		}
		if !changed {
			return nil
		}
	}
}

// threads lists the process's thread IDs.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("listing the process's threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
