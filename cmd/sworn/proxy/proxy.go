package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/sworn-id/sworn/trust"
)

// Mode of the proxy.
type Mode string

// Modes.
const (
	ModeServer Mode = "server" // mTLS in, plain out
	ModeClient Mode = "client" // plain in, mTLS out
	ModeHTTP   Mode = "http"   // mTLS in, per-request policy, HTTP out
)

// Config configures a Proxy.
type Config struct {
	Mode Mode
	// Target is host:port, or unix:PATH for a Unix socket.
	Target string
	Source trust.Source
	Guard  *trust.Guard
	// HandshakeTimeout bounds a TLS handshake; 0 means 10s.
	HandshakeTimeout time.Duration
	// DrainTimeout is how long open connections get at shutdown; 0 means 10s.
	DrainTimeout time.Duration
	Logger       *slog.Logger
	Metrics      *Metrics
	// Now is the clock /_status reads SVID expiry against; nil means
	// time.Now.
	Now func() time.Time
}

// Metrics are the proxy's instruments.
type Metrics struct {
	Connections *prometheus.CounterVec // result, reason
	Bytes       *prometheus.CounterVec // direction
	Handshake   prometheus.Histogram
	Requests    *prometheus.CounterVec // HTTP mode: result (allowed, denied, bad_request)
}

// NewMetrics registers the proxy's metrics with r.
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sworn_proxy_connections_total", Help: "Connections by result (accepted, refused) and reason.",
		}, []string{"result", "reason"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sworn_proxy_bytes_total", Help: "Bytes forwarded, by direction (to_target, from_target).",
		}, []string{"direction"}),
		Handshake: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sworn_proxy_handshake_duration_seconds", Help: "TLS handshake time, successful or not.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sworn_proxy_http_requests_total", Help: "HTTP mode requests by result (allowed, denied, bad_request).",
		}, []string{"result"}),
	}
	r.MustRegister(m.Connections, m.Bytes, m.Handshake, m.Requests)
	return m
}

// Proxy forwards connections.
type Proxy struct {
	cfg    Config
	tlsCfg *tls.Config
	// network and address are where the target is dialled (Network).
	network, address string
	state            atomic.Int32 // a serveState, for /_status
	wg               sync.WaitGroup
	mu               sync.Mutex
	conns            map[net.Conn]struct{}
}

// New returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Source == nil || cfg.Guard == nil || cfg.Target == "" {
		return nil, errors.New("proxy: a source, a guard and a target are required")
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Proxy{cfg: cfg, conns: map[net.Conn]struct{}{}}
	p.network, p.address = Network(cfg.Target)
	switch cfg.Mode {
	case ModeServer, ModeHTTP:
		p.tlsCfg = trust.ServerConfig(cfg.Source, cfg.Guard)
	case ModeClient:
		p.tlsCfg = trust.ClientConfig(cfg.Source, cfg.Guard)
	default:
		return nil, fmt.Errorf("proxy: unknown mode %q", cfg.Mode)
	}
	return p, nil
}

// Serve accepts on l until ctx ends, then drains.
func (p *Proxy) Serve(ctx context.Context, l net.Listener) error {
	p.state.Store(int32(stateListening))
	go func() {
		<-ctx.Done()
		p.state.Store(int32(stateDraining))
	}()
	if p.cfg.Mode == ModeHTTP {
		return p.serveHTTP(ctx, l)
	}
	go func() {
		<-ctx.Done()
		_ = l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				p.drain()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("proxy: accept: %w", err)
		}
		p.track(c, true)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.track(c, false)
			if p.cfg.Mode == ModeServer {
				p.handleServer(ctx, c)
			} else {
				p.handleClient(ctx, c)
			}
		}()
	}
}

func (p *Proxy) track(c net.Conn, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if open {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

// drain waits for open connections, then cuts those left.
func (p *Proxy) drain() {
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(p.cfg.DrainTimeout):
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		<-done
	}
}

// handshake completes a TLS handshake and returns the peer's ID. When the
// policy refused the peer, the ID is returned with the error: the Guard's
// authorizer runs only after go-spiffe verified the peer's SVID against the
// bundle, and crypto/tls records the peer's certificates before calling it,
// so the refused peer is known and belongs in the audit line. After any
// other failure the certificate, if any, is unverified and its ID only a
// claim, so none is returned.
func (p *Proxy) handshake(ctx context.Context, c *tls.Conn) (spiffeid.ID, error) {
	hctx, cancel := context.WithTimeout(ctx, p.cfg.HandshakeTimeout)
	defer cancel()
	start := time.Now()
	err := c.HandshakeContext(hctx)
	p.cfg.Metrics.Handshake.Observe(time.Since(start).Seconds())
	if err != nil {
		if errors.Is(err, trust.ErrNotAuthorized) {
			if id, idErr := peerID(c.ConnectionState()); idErr == nil {
				return id, err
			}
		}
		return spiffeid.ID{}, err
	}
	return peerID(c.ConnectionState())
}

func peerID(st tls.ConnectionState) (spiffeid.ID, error) {
	if len(st.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("no peer certificate")
	}
	return x509svid.IDFromCert(st.PeerCertificates[0])
}

// refusal classifies a failed handshake for metrics and the audit line.
func refusal(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, trust.ErrNotAuthorized):
		return "policy"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "handshake"
	}
}

// refuse counts and logs a failed handshake; id is the verified peer the
// policy refused, or zero.
func (p *Proxy) refuse(c net.Conn, id spiffeid.ID, err error) {
	reason := refusal(err)
	peer := ""
	if !id.IsZero() {
		peer = id.String()
	}
	p.cfg.Metrics.Connections.WithLabelValues("refused", reason).Inc()
	p.cfg.Logger.Info("connection refused", "remote", c.RemoteAddr().String(), "peer", peer, "reason", reason, "error", err)
}

func (p *Proxy) handleServer(ctx context.Context, raw net.Conn) {
	c := tls.Server(raw, p.tlsCfg)
	defer c.Close()
	id, err := p.handshake(ctx, c)
	if err != nil {
		p.refuse(raw, id, err)
		return
	}
	backend, err := p.dialTarget(ctx)
	if err != nil {
		p.cfg.Metrics.Connections.WithLabelValues("refused", "target").Inc()
		p.cfg.Logger.Error("target unreachable", "target", p.cfg.Target, "peer", id.String(), "error", err)
		return
	}
	defer backend.Close()
	p.cfg.Metrics.Connections.WithLabelValues("accepted", "").Inc()
	p.pipe(c, backend, raw.RemoteAddr().String(), id.String())
}

func (p *Proxy) handleClient(ctx context.Context, local net.Conn) {
	defer local.Close()
	raw, err := p.dialTarget(ctx)
	if err != nil {
		p.cfg.Metrics.Connections.WithLabelValues("refused", "target").Inc()
		p.cfg.Logger.Error("target unreachable", "target", p.cfg.Target, "error", err)
		return
	}
	c := tls.Client(raw, p.tlsCfg)
	defer c.Close()
	id, err := p.handshake(ctx, c)
	if err != nil {
		p.refuse(raw, id, err)
		return
	}
	p.cfg.Metrics.Connections.WithLabelValues("accepted", "").Inc()
	p.pipe(local, c, local.RemoteAddr().String(), id.String())
}

// dialTarget opens a connection to the target, over TCP or a Unix socket,
// within the handshake timeout.
func (p *Proxy) dialTarget(ctx context.Context) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: p.cfg.HandshakeTimeout}
	return dialer.DialContext(ctx, p.network, p.address)
}

// pipe copies both ways until either side is done, then logs the audit
// line. in is the side connections arrive on, out the side dialled.
func (p *Proxy) pipe(in, out net.Conn, remote, peer string) {
	start := time.Now()
	var toTarget, fromTarget atomic.Int64
	done := make(chan struct{}, 2)
	copyHalf := func(dst, src net.Conn, n *atomic.Int64, dir string) {
		w, _ := io.Copy(dst, src)
		n.Store(w)
		p.cfg.Metrics.Bytes.WithLabelValues(dir).Add(float64(w))
		closeWrite(dst)
		done <- struct{}{}
	}
	go copyHalf(out, in, &toTarget, "to_target")
	go copyHalf(in, out, &fromTarget, "from_target")
	<-done
	<-done
	p.cfg.Logger.Info("connection closed", "remote", remote, "peer", peer, "decision", "allowed",
		"bytes_to_target", toTarget.Load(), "bytes_from_target", fromTarget.Load(), "duration", time.Since(start).Round(time.Millisecond))
}

// closeWrite half-closes c so the other side sees EOF while replies flow.
func closeWrite(c net.Conn) {
	switch v := c.(type) {
	case interface{ CloseWrite() error }:
		_ = v.CloseWrite()
	default:
		_ = c.Close()
	}
}

func (p *Proxy) serveHTTP(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		ReadHeaderTimeout: p.cfg.HandshakeTimeout,
		Handler:           p.httpHandler(p.targetTransport()),
		ErrorLog:          slog.NewLogLogger(p.cfg.Logger.Handler(), slog.LevelDebug),
	}
	hl := &handshakeListener{Listener: l, p: p, ctx: ctx, conns: make(chan net.Conn), done: make(chan struct{})}
	go hl.acceptLoop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(hl)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("proxy: %w", err)
}

// handshakeListener hands the HTTP server only connections whose mTLS
// handshake, and so the policy check, has succeeded. Handshakes run
// concurrently so a slow client delays nobody else.
type handshakeListener struct {
	net.Listener
	p     *Proxy
	ctx   context.Context
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error
}

func (h *handshakeListener) acceptLoop() {
	for {
		raw, err := h.Listener.Accept()
		if err != nil {
			h.once.Do(func() {
				h.err = err
				close(h.done)
			})
			return
		}
		go func() {
			c := tls.Server(raw, h.p.tlsCfg)
			if id, err := h.p.handshake(h.ctx, c); err != nil {
				h.p.refuse(raw, id, err)
				_ = raw.Close()
				return
			}
			h.p.cfg.Metrics.Connections.WithLabelValues("accepted", "").Inc()
			select {
			case h.conns <- c:
			case <-h.done:
				_ = c.Close()
			}
		}()
	}
}

func (h *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, h.err
	}
}

func (h *handshakeListener) Close() error {
	err := h.Listener.Close()
	h.once.Do(func() {
		h.err = net.ErrClosed
		close(h.done)
	})
	return err
}
