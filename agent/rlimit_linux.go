package agent

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// raiseFileLimit raises the soft open-file limit to the hard one and
// returns the limit in force. Go does this at start since 1.19; doing it
// here too makes it explicit and gives the number the connection cap is
// derived from.
func raiseFileLimit() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("agent: getrlimit(RLIMIT_NOFILE): %w", err)
	}
	if r.Cur < r.Max {
		raised := r
		raised.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &raised); err != nil {
			return r.Cur, nil // keep the soft limit we have
		}
		r = raised
	}
	return r.Cur, nil
}
