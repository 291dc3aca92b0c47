//go:build !linux

package agent

import (
	"errors"
	"os"
)

const oNoFollow = 0

// lockFile is not implemented off Linux, where the agent does not run
// (cmd/sworn refuses to start it); New then fails instead of running
// without the lock.
func lockFile(*os.File) error {
	return errors.New("locking the data dir is implemented on Linux only")
}
