package registrar_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every registrar the tests start is closed; nothing it started may outlive it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
