//go:build !linux

package peer

import (
	"errors"
	"fmt"
	"net"
)

// errUnsupported is what every caller check returns off Linux: the agent
// depends on SO_PEERCRED, pidfds and /proc, which other systems lack, so a
// connection's caller is never known there and nothing is attested.
var errUnsupported = errors.New("peer: caller credentials are only supported on Linux (SO_PEERCRED, pidfd)")

func newConn(*net.UnixConn, bool, bool) (*Conn, error) {
	return nil, fmt.Errorf("peer: credentials: %w", errUnsupported)
}

// Verify implements the check documented in conn_linux.go; off Linux no
// connection is ever accepted, so it only reports that.
func (c *Conn) Verify() error { return errUnsupported }

// Close closes the connection.
func (c *Conn) Close() error { return c.UnixConn.Close() }

func supportsPeerPIDFD() bool { return false }
func supportsSockDiag() bool  { return false }
