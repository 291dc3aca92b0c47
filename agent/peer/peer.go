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
)

// ErrGone means the caller exited after it connected.
var ErrGone = errors.New("peer: caller exited; its PID may have been reused")

// ErrNotCaller means the process that connected is alive but is no longer
// what the agent attested: it runs another executable than when its
// connection was accepted, its effective uid or gid had changed by then, or
// it no longer holds its end of the connection (it handed it to another
// process). Nothing will change that, so the connection must never carry
// an identity again; a new connection is attested afresh.
var ErrNotCaller = errors.New("peer: the process on this connection is not the one that was attested")

// Listener accepts Unix connections that know their caller.
type Listener struct {
	*net.UnixListener
	peerPIDFD bool
	sockDiag  bool
}

// Listen wraps l.
func Listen(l *net.UnixListener) *Listener {
	return &Listener{UnixListener: l, peerPIDFD: supportsPeerPIDFD(), sockDiag: supportsSockDiag()}
}

// SocketCheck reports whether Verify can check that the caller still holds
// its end of the connection (the kernel answers unix sock_diag queries,
// CONFIG_UNIX_DIAG). Without it that one check is skipped.
func (l *Listener) SocketCheck() bool { return l.sockDiag }

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
		conn, err := newConn(c, l.peerPIDFD, l.sockDiag)
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
	caller Caller

	// notCaller is why the caller can no longer be attested, decided at
	// accept (nil if it can).
	notCaller error

	mu       sync.Mutex
	pidfd    int    // -1 once closed
	sockDiag bool   // whether to check the caller holds its socket
	peerIno  uint64 // inode of the caller's end, once looked up
	fdHint   int    // the caller's fd for it when last found, or -1
}

func newConn(c *net.UnixConn, peerPIDFD, sockDiag bool) (*Conn, error) {
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
	// Record what the caller runs as soon as possible: an exec between
	// connect and this stat is the one change the agent cannot see (see
	// the package comment), so the window is kept short.
	exe, exeErr := statExe(cred.Pid)
	notCaller := credsChanged(cred.Pid, cred.Uid, cred.Gid)
	// Both reads went by PID; they describe the caller only if it is still
	// alive now.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		_ = unix.Close(pidfd)
		return nil, fmt.Errorf("peer: caller %d exited before it was accepted: %w", cred.Pid, err)
	}
	if notCaller == nil && exeErr != nil {
		notCaller = fmt.Errorf("peer: executable of caller %d: %w: %w", cred.Pid, ErrNotCaller, exeErr)
	}
	caller := Caller{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid, Groups: groups, Exe: exe}
	return &Conn{UnixConn: c, caller: caller, notCaller: notCaller, pidfd: pidfd, sockDiag: sockDiag, fdHint: -1}, nil
}

// Caller returns the caller recorded at accept time.
func (c *Conn) Caller() Caller { return c.caller }

// Verify reports whether the caller is still the process that was
// attested: alive (ErrGone if not), running the executable it ran when its
// connection was accepted, and holding its end of the connection (an error
// wrapping ErrNotCaller if not).
func (c *Conn) Verify() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pidfd < 0 {
		return ErrGone
	}
	// What is read by PID first, then whether the PID still names the
	// caller; a dead caller is reported as such whatever the reads said.
	checkErr := c.check()
	err := unix.PidfdSendSignal(c.pidfd, 0, nil, 0)
	switch {
	case err == nil:
		return checkErr
	case errors.Is(err, unix.ESRCH):
		return ErrGone
	default:
		return fmt.Errorf("peer: check caller %d: %w", c.caller.PID, err)
	}
}

// check runs the per-call checks that read /proc: one stat, and normally
// one readlink (the fd where the socket was found last time). c.mu is held.
func (c *Conn) check() error {
	if c.notCaller != nil {
		return c.notCaller
	}
	pid := c.caller.PID
	exe, err := statExe(pid)
	if err != nil {
		return fmt.Errorf("peer: executable of caller %d: %w", pid, err)
	}
	if exe != c.caller.Exe {
		return fmt.Errorf("peer: caller %d: %w: %w", pid, ErrExecutableChanged, ErrNotCaller)
	}
	if !c.sockDiag {
		return nil
	}
	if c.peerIno == 0 {
		if c.peerIno, err = c.lookupPeerInode(); err != nil {
			return err
		}
	}
	c.fdHint, err = holdsSocket(pid, c.peerIno, c.fdHint)
	return err
}

func (c *Conn) lookupPeerInode() (uint64, error) {
	raw, err := c.UnixConn.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	var ino uint64
	var diagErr error
	if err := raw.Control(func(fd uintptr) { ino, diagErr = peerInode(int(fd)) }); err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	return ino, diagErr
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
func (a AuthInfo) Caller() Caller { return a.conn.Caller() }

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
