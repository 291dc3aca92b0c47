package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

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
		if errors.Is(err, errUnsupported) {
			// Off Linux no caller is ever known: end Serve loudly
			// rather than refuse every connection in silence.
			_ = c.Close()
			return nil, err
		}
		if err != nil {
			// The caller went away or the socket is not what we expect;
			// either way it gets no answer, and the listener carries on.
			_ = c.Close()
			continue
		}
		return conn, nil
	}
}

// errUnsupported is what every caller check returns off Linux: the agent
// depends on SO_PEERCRED, pidfds and /proc, which other systems lack, so a
// connection's caller is never known there and nothing is attested.
var errUnsupported = errors.New("peer: caller credentials are only supported on Linux (SO_PEERCRED, pidfd)")

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

	// checks counts the checks Verify began; last is the number of the
	// last one done, and lastOK whether it passed (both under mu). A call
	// that finds the last check begun after it was made, and passed,
	// shares that result (see Verify).
	checks atomic.Uint64
	last   uint64
	lastOK bool
}

// Caller returns the caller recorded at accept time.
func (c *Conn) Caller() Caller { return c.caller }

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
