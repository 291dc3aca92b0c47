package agent

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

const oNoFollow = unix.O_NOFOLLOW

// lockFile takes an exclusive flock on f without waiting. flock belongs to
// the open file description, so two opens of the same file conflict even
// within one process, and the kernel drops the lock when the agent exits,
// however it exits (kill -9 included): a stale lock file never blocks a
// restart.
func lockFile(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return errLocked
		default:
			return err
		}
	}
}
