//go:build !linux

package cli

import "errors"

// errAgentUnsupported is what `sworn agent` says off Linux. Everything
// else (client commands, proxy, svid write) works on any system; the agent
// identifies its callers with SO_PEERCRED, pidfds and /proc, which only
// Linux has, so it refuses to start rather than serve callers it cannot
// attest.
var errAgentUnsupported = errors.New("sworn agent: the node agent runs on Linux only (peer credentials, pidfd)")

func agentSupported() error { return errAgentUnsupported }
