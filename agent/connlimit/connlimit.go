package connlimit

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	grpcpeer "google.golang.org/grpc/peer"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/agent/peer"
)

// Reason says which limit refused a connection.
type Reason string

// Reasons a connection is refused.
const (
	UIDLimit   Reason = "uid_limit"
	TotalLimit Reason = "total_limit"
)

// CallerConn is a connection that knows who is on the other end, as
// *peer.Conn does.
type CallerConn interface {
	net.Conn
	Caller() peer.Caller
}

// Config configures a Listener.
type Config struct {
	// PerUID bounds the connections one uid holds; Total those of all.
	PerUID, Total int
	// OnRefuse, if set, is called for every refused connection.
	OnRefuse func(Reason)
	Logger   *slog.Logger
	Clock    clock.PassiveClock
	// LogEvery is the least time between two refusal log lines; default
	// 10s.
	LogEvery time.Duration
}

// Listener accepts connections within the limits of its Config.
type Listener struct {
	net.Listener
	cfg Config
	log *LogLimiter

	// mu makes the two limits one decision (a connection takes a slot of
	// both or of neither) and guards open; perUID changes only under it.
	mu     sync.Mutex
	perUID Counter
	open   int
}

// New wraps l, whose connections must implement CallerConn.
func New(l net.Listener, cfg Config) *Listener {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: l, cfg: cfg, perUID: Counter{Limit: cfg.PerUID}, log: &LogLimiter{Every: cfg.LogEvery, Clock: cfg.Clock}}
}

// Accept returns the next connection within the limits; connections over
// them are closed and skipped.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cc, ok := c.(CallerConn)
		if !ok {
			_ = c.Close()
			return nil, fmt.Errorf("connlimit: connection of type %T does not know its caller", c)
		}
		caller := cc.Caller()
		release, reason, held := l.admit(caller.UID)
		if reason != "" {
			// Counted before the close, so that by the time the caller
			// sees its connection end the refusal is in the metrics.
			l.refused(caller, reason, held)
			_ = c.Close()
			continue
		}
		return &Conn{CallerConn: cc, release: release}, nil
	}
}

// admit takes a slot for uid and returns its release, or says which
// limit stops it (the uid's first) and how many connections that limit
// counts now.
func (l *Listener) admit(uid uint32) (release func(), _ Reason, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	releaseUID, ok := l.perUID.Acquire(uid)
	if !ok {
		return nil, UIDLimit, l.perUID.Held(uid)
	}
	if l.open >= l.cfg.Total {
		releaseUID()
		return nil, TotalLimit, l.open
	}
	l.open++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.open--
		releaseUID()
	}, "", 0
}

func (l *Listener) refused(c peer.Caller, reason Reason, held int) {
	if l.cfg.OnRefuse != nil {
		l.cfg.OnRefuse(reason)
	}
	ok, suppressed := l.log.Allow()
	if !ok {
		return
	}
	switch reason {
	case UIDLimit:
		l.cfg.Logger.Warn("refused a Workload API connection: its uid holds as many as allowed",
			"pid", c.PID, "uid", c.UID, "held", held, "limit", l.cfg.PerUID, "refusals_not_logged", suppressed)
	default:
		l.cfg.Logger.Warn("refused a Workload API connection: the agent holds as many as allowed",
			"pid", c.PID, "uid", c.UID, "held", held, "limit", l.cfg.Total, "refusals_not_logged", suppressed)
	}
}

// Open returns the number of connections held now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Saturated returns nil while every limit has room, else which is reached.
func (l *Listener) Saturated() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.cfg.Total {
		return fmt.Errorf("connlimit: %d connections open, the most allowed; new ones of every uid are refused", l.open)
	}
	if uid, held, ok := l.perUID.Full(); ok {
		return fmt.Errorf("connlimit: uid %d holds %d connections, the most one uid may; its new ones are refused", uid, held)
	}
	return nil
}

// Conn is an accepted connection holding a slot until it is closed.
type Conn struct {
	CallerConn
	release func()
	once    sync.Once
}

// Close closes the connection and frees its slot (once).
func (c *Conn) Close() error {
	err := c.CallerConn.Close()
	c.once.Do(c.release)
	return err
}

// RemoteAddr returns the peer's address, carrying c so that FromContext
// can find the connection of a gRPC call.
func (c *Conn) RemoteAddr() net.Addr { return addr{Addr: c.CallerConn.RemoteAddr(), conn: c} }

type addr struct {
	net.Addr
	conn *Conn
}

// FromContext returns the connection of a gRPC call served over a Listener
// whose server uses Credentials.
func FromContext(ctx context.Context) (*Conn, bool) {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return nil, false
	}
	a, ok := p.Addr.(addr)
	return a.conn, ok
}

// Credentials wraps inner: its handshake gets the connection a Listener
// wrapped, and gRPC keeps the counted Conn.
func Credentials(inner credentials.TransportCredentials) credentials.TransportCredentials {
	return creds{inner}
}

type creds struct {
	credentials.TransportCredentials
}

func (c creds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, ok := raw.(*Conn)
	if !ok {
		return nil, nil, fmt.Errorf("connlimit: connection of type %T was not accepted by a connlimit.Listener", raw)
	}
	_, info, err := c.TransportCredentials.ServerHandshake(conn.CallerConn)
	if err != nil {
		return nil, nil, err
	}
	return conn, info, nil
}

func (c creds) Clone() credentials.TransportCredentials { return creds{c.TransportCredentials.Clone()} }
