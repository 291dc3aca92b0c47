//go:build !linux

package agent

import "errors"

// raiseFileLimit is not implemented off Linux; the agent then derives its
// connection cap from fallbackFileLimit.
func raiseFileLimit() (uint64, error) {
	return 0, errors.New("agent: reading RLIMIT_NOFILE is implemented on Linux only")
}
