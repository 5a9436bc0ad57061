//go:build !unix

package loadgen

import "errors"

func raiseFileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.New("open-file limits are not managed on this system")
}
