//go:build !linux

package peer

import (
	"fmt"
	"net"
)

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
