package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	grpcpeer "google.golang.org/grpc/peer"

	"github.com/sworn-id/sworn/agent/attest"
)

// ErrGone means the caller exited after it connected.
var ErrGone = errors.New("peer: caller exited; its PID may have been reused")

// Listener accepts Unix connections that know their caller.
type Listener struct {
	*net.UnixListener
	peerPIDFD bool
}

// Listen wraps l.
func Listen(l *net.UnixListener) *Listener {
	return &Listener{UnixListener: l, peerPIDFD: supportsPeerPIDFD()}
}

// PeerPIDFD reports whether the kernel hands out the caller's pidfd with the
// connection (race free) rather than it being opened at accept time.
func (l *Listener) PeerPIDFD() bool { return l.peerPIDFD }

// Accept waits for a connection and records its caller. A connection whose
// caller cannot be identified is closed and skipped.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		conn, err := newConn(c, l.peerPIDFD)
		if err != nil {
			// The caller went away or the socket is not what we expect;
			// either way it gets no answer, and the listener carries on.
			_ = c.Close()
			continue
		}
		return conn, nil
	}
}

// Conn is a connection with a known caller.
type Conn struct {
	*net.UnixConn
	caller attest.Caller

	mu    sync.Mutex
	pidfd int // -1 once closed
}

func newConn(c *net.UnixConn, peerPIDFD bool) (*Conn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var groups []uint32
	pidfd := -1
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		cred, sockErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if sockErr != nil {
			return
		}
		if groups, sockErr = peerGroups(int(fd)); sockErr != nil || !peerPIDFD {
			return
		}
		pidfd, sockErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	})
	if err == nil {
		err = sockErr
	}
	if err != nil {
		return nil, fmt.Errorf("peer: credentials: %w", err)
	}
	if cred.Pid <= 0 {
		return nil, errors.New("peer: caller has no PID in this PID namespace")
	}
	if !peerPIDFD {
		if pidfd, err = unix.PidfdOpen(int(cred.Pid), 0); err != nil {
			return nil, fmt.Errorf("peer: pidfd_open(%d): %w", cred.Pid, err)
		}
	}
	caller := attest.Caller{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid, Groups: groups}
	return &Conn{UnixConn: c, caller: caller, pidfd: pidfd}, nil
}

// Caller returns the caller recorded at accept time.
func (c *Conn) Caller() attest.Caller { return c.caller }

// Verify reports whether the caller is still alive (ErrGone if not).
func (c *Conn) Verify() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pidfd < 0 {
		return ErrGone
	}
	err := unix.PidfdSendSignal(c.pidfd, 0, nil, 0)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ESRCH):
		return ErrGone
	default:
		return fmt.Errorf("peer: check caller %d: %w", c.caller.PID, err)
	}
}

// Close closes the connection and the pidfd.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.pidfd >= 0 {
		_ = unix.Close(c.pidfd)
		c.pidfd = -1
	}
	c.mu.Unlock()
	return c.UnixConn.Close()
}

func supportsPeerPIDFD() bool {
	a, b, err := socketPair()
	if err != nil {
		return false
	}
	defer unix.Close(a)
	defer unix.Close(b)
	fd, err := unix.GetsockoptInt(a, unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil {
		return false
	}
	_ = unix.Close(fd)
	return true
}

func socketPair() (int, int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, err
	}
	return fds[0], fds[1], nil
}

// AuthInfo is what gRPC keeps about a connection's caller.
type AuthInfo struct {
	credentials.CommonAuthInfo
	conn *Conn
}

// AuthType implements credentials.AuthInfo.
func (AuthInfo) AuthType() string { return "sworn-peer" }

// Caller returns the caller recorded at accept time.
func (a AuthInfo) Caller() attest.Caller { return a.conn.Caller() }

// Verify reports whether the caller is still the process that connected.
func (a AuthInfo) Verify() error { return a.conn.Verify() }

// FromContext returns the AuthInfo of a gRPC call served over a Listener.
func FromContext(ctx context.Context) (AuthInfo, bool) {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return AuthInfo{}, false
	}
	ai, ok := p.AuthInfo.(AuthInfo)
	return ai, ok
}

// Credentials returns gRPC transport credentials that expose the caller of
// each connection accepted by a Listener. They add no encryption: the socket
// is local and guarded by file permissions.
func Credentials() credentials.TransportCredentials { return creds{} }

type creds struct{}

func (creds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peer: credentials are for servers only")
}

func (creds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, ok := c.(*Conn)
	if !ok {
		return nil, nil, fmt.Errorf("peer: connection of type %T was not accepted by a peer.Listener", c)
	}
	return conn, AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}, conn: conn}, nil
}

func (creds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "sworn-peer"}
}
func (c creds) Clone() credentials.TransportCredentials { return c }
func (creds) OverrideServerName(string) error           { return nil }
