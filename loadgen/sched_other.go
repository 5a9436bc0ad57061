//go:build !linux

package loadgen

import "errors"

func setRealtime() error {
	return errors.New("real-time scheduling is only supported on Linux")
}
