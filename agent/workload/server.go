package workload

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/connlimit"
	"github.com/sworn-id/sworn/agent/peer"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/agent/telemetry"
)

// Registry matches selectors to entries.
type Registry interface {
	Match(attest.Set) ([]registry.Entry, []error)
	Changed() <-chan struct{}
}

// Bundles is the trust bundle store.
type Bundles interface {
	Snapshot() bundle.Snapshot
	Changed() <-chan struct{}
}

// Cache hands out SVIDs: each stream holds a Subscription for the entries
// its caller matches. An interface, so the server can be tested with a
// fake; FromCache adapts the agent's *cache.Cache.
type Cache interface {
	Subscribe(ctx context.Context, entries []registry.Entry, who cache.Requester) (Subscription, error)
}

// Subscription is what a stream holds while it is open (cache.Subscription
// is the real one).
type Subscription interface {
	// SVIDs returns the current SVID of every held entry, in entry order.
	SVIDs() []*cache.SVID
	// Updates receives a value, coalesced, whenever a held SVID changes.
	Updates() <-chan struct{}
	// Update makes it hold exactly entries; on error the old set is kept.
	Update(ctx context.Context, entries []registry.Entry, who cache.Requester) error
	// Close releases every held SVID.
	Close()
}

// FromCache adapts c, whose Subscribe returns its concrete type, to Cache.
func FromCache(c *cache.Cache) Cache { return svidCache{c} }

type svidCache struct{ c *cache.Cache }

func (s svidCache) Subscribe(ctx context.Context, entries []registry.Entry, who cache.Requester) (Subscription, error) {
	sub, err := s.c.Subscribe(ctx, entries, who)
	if err != nil {
		// A nil *cache.Subscription in the interface would not be nil.
		return nil, err
	}
	return sub, nil
}

// Config configures a Server.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	Attestor    attest.Attestor
	Registry    Registry
	Cache       Cache
	Bundles     Bundles
	// JWT issues JWT-SVIDs; nil if the CA cannot sign them.
	JWT     JWTSource
	Logger  *slog.Logger
	Metrics *telemetry.Metrics
	// Limits are enforced by the interceptors of ServerOptions.
	Limits Limits
	// Clock times blocked sends; default the real clock.
	Clock clock.WithDelayedExecution
	// SDS names the default SDS resources; empty fields take SPIRE's
	// names (default, ROOTCA, ALL).
	SDS SDSNames
}

// Server implements the Workload API.
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	cfg Config
	// done ends every stream, so a graceful stop does not wait on streams
	// that would otherwise run forever.
	done <-chan struct{}

	streams  connlimit.Counter
	refusals connlimit.LogLimiter
	ders     atomic.Pointer[bundleDERs] // of the latest bundle snapshot seen
}

// bundleDERs is each trust domain's bundle as the Workload API sends it
// (concatenated DER), for one bundle snapshot: built once per change, not
// once per stream (a rotation pushed to 10,000 streams built it 10,000
// times). Read-only once stored.
type bundleDERs struct {
	seq uint64
	der map[spiffeid.TrustDomain][]byte
}

// bundleDER returns the current bundles' DER, built at most once per
// bundle change.
func (s *Server) bundleDER() map[spiffeid.TrustDomain][]byte {
	snap := s.cfg.Bundles.Snapshot()
	if d := s.ders.Load(); d != nil && d.seq == snap.Seq {
		return d.der
	}
	d := &bundleDERs{seq: snap.Seq, der: bundleDER(snap)}
	s.ders.Store(d)
	return d.der
}

// New returns a Server whose streams end cleanly when done is closed.
func New(cfg Config, done <-chan struct{}) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = telemetry.New()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Server{cfg: cfg, done: done, streams: connlimit.Counter{Limit: cfg.Limits.StreamsPerUID}, refusals: connlimit.LogLimiter{Clock: cfg.Clock}}
}

// Register adds the Workload API to s.
func (s *Server) Register(g *grpc.Server) { workload.RegisterSpiffeWorkloadAPIServer(g, s) }

var (
	errNoHeader   = status.Error(codes.InvalidArgument, "security header missing from request")
	errNoIdentity = status.Error(codes.PermissionDenied, "no identity issued")
)

// caller is an attested caller.
type caller struct {
	peer.Caller
	selectors attest.Set
	// verify reports whether the process that connected is still the one
	// attested (see peer.Conn.Verify).
	verify func() error
}

// checkHeader checks the security header every call must carry.
func checkHeader(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return errNoHeader
	}
	return nil
}

// attest checks the security header and attests the caller.
func (s *Server) attest(ctx context.Context) (caller, error) {
	if err := checkHeader(ctx); err != nil {
		return caller{}, err
	}
	return s.attestCaller(ctx)
}

// attestCaller attests the caller of a call that needs no security header
// (Envoy's SDS sends none): what the caller is comes from the kernel, so the
// header only guards against a browser-like confused deputy, which SDS
// clients are not.
func (s *Server) attestCaller(ctx context.Context) (caller, error) {
	info, ok := peer.FromContext(ctx)
	if !ok {
		return caller{}, status.Error(codes.Internal, "caller credentials unavailable")
	}
	c := caller{Caller: info.Caller(), verify: info.Verify}
	start := time.Now()
	sel, err := s.cfg.Attestor.Attest(ctx, c.Caller)
	if err == nil {
		// The caller must still be the process that connected, or what was
		// read from /proc may describe a process that reused its PID.
		err = info.Verify()
	}
	s.cfg.Metrics.AttestationLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		s.cfg.Metrics.AttestationFailures.Inc()
		s.cfg.Logger.Warn("attestation failed", "pid", c.PID, "uid", c.UID, "error", err)
		if errors.Is(err, peer.ErrGone) {
			return caller{}, status.Error(codes.Unavailable, "could not verify the caller: it exited during attestation")
		}
		// Not transient: the process that opened this connection has since
		// exec'd or handed the connection on, so no call on it will ever be
		// attested again. Unavailable would invite retrying on the same
		// connection forever; the caller is told to open a new one.
		if errors.Is(err, peer.ErrNotCaller) || errors.Is(err, peer.ErrExecutableChanged) {
			return caller{}, errNotCaller
		}
		return caller{}, status.Error(codes.Unavailable, "attestation failed")
	}
	c.selectors = attest.NewSet(sel...)
	return c, nil
}

var errAllExpired = status.Error(codes.Unavailable, "every X.509-SVID of this caller has expired and the CA has not renewed it yet (is the CA reachable? see the agent's /ready); retry")

var errNotCaller = status.Error(codes.PermissionDenied, "this connection's process no longer runs the executable it connected with or no longer holds the connection; open a new connection")

// reverify checks, before a stream sends again, that its caller is still
// the process attested when the stream opened. Every send after the first
// carries a new key or bundle; a process that has since exec'd, exited or
// handed its connection to another must not receive them.
func (s *Server) reverify(c caller) error {
	err := c.verify()
	if err == nil {
		return nil
	}
	s.cfg.Logger.Warn("ending a stream whose caller changed", "pid", c.PID, "uid", c.UID, "error", err)
	if errors.Is(err, peer.ErrGone) || errors.Is(err, peer.ErrNotCaller) || errors.Is(err, peer.ErrExecutableChanged) {
		return errNotCaller
	}
	return status.Error(codes.Unavailable, "could not verify the caller; open a new connection")
}

func (s *Server) match(c caller) []registry.Entry {
	entries, errs := s.cfg.Registry.Match(c.selectors)
	for _, err := range errs {
		s.cfg.Logger.Warn("rule could not be applied", "pid", c.PID, "uid", c.UID, "error", err)
	}
	return entries
}

// FetchX509SVID streams the caller's X.509-SVIDs and bundles.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) (err error) {
	defer s.track("FetchX509SVID")(&err)
	ctx := stream.Context()
	c, entries, err := s.attestAndMatch(ctx, s.attest)
	if err != nil {
		return err
	}
	who := cache.Requester{PID: c.PID, UID: c.UID}
	sub, err := s.cfg.Cache.Subscribe(ctx, entries, who)
	if err != nil {
		return s.issueError(err)
	}
	defer sub.Close()

	for first := true; ; first = false {
		rulesChanged := s.cfg.Registry.Changed()
		bundlesChanged := s.cfg.Bundles.Changed()
		if !first {
			if err := s.reverify(c); err != nil {
				return err
			}
		}
		svids := sub.SVIDs()
		if len(svids) == 0 {
			// Every SVID it holds expired unrenewed (the cache never hands
			// out an expired one): nothing valid to send. Unavailable, so
			// the client retries with backoff until the CA renews them.
			return errAllExpired
		}
		if err := stream.Send(s.x509SVIDResponse(svids, federatedWith(entries))); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		case <-sub.Updates():
		case <-bundlesChanged:
		case <-rulesChanged:
			// Attested again: the attestor skips what no rule needed (the
			// executable's digest), and the new rules may need it.
			if c, err = s.attest(ctx); err != nil {
				return err
			}
			entries = s.match(c)
			if len(entries) == 0 {
				s.cfg.Logger.Info("caller lost its last identity; ending its stream", "pid", c.PID, "uid", c.UID)
				return errNoIdentity
			}
			if err := sub.Update(ctx, entries, who); err != nil {
				return s.issueError(err)
			}
		}
	}
}

// FetchX509Bundles streams the bundles a caller with an identity trusts.
func (s *Server) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) (err error) {
	defer s.track("FetchX509Bundles")(&err)
	return s.streamBundles(stream.Context(), func(fed map[spiffeid.TrustDomain]bool) error {
		resp := &workload.X509BundlesResponse{Bundles: map[string][]byte{}}
		for td, der := range s.bundleDER() {
			if s.visible(td, fed) {
				resp.Bundles[td.IDString()] = der
			}
		}
		return stream.Send(resp)
	})
}

// streamBundles attests the caller of a bundle stream, then calls send at
// once and again on every bundle or rule change, with the foreign trust
// domains the caller's identities federate with. The stream ends with
// PermissionDenied when the caller loses its last identity.
func (s *Server) streamBundles(ctx context.Context, send func(fed map[spiffeid.TrustDomain]bool) error) error {
	c, err := s.attest(ctx)
	if err != nil {
		return err
	}
	entries := s.match(c)
	if len(entries) == 0 {
		return errNoIdentity
	}
	for first := true; ; first = false {
		rulesChanged := s.cfg.Registry.Changed()
		bundlesChanged := s.cfg.Bundles.Changed()
		if !first {
			if err := s.reverify(c); err != nil {
				return err
			}
		}
		if err := send(federatedWith(entries)); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		case <-bundlesChanged:
		case <-rulesChanged:
			// Attested again: the attestor skips what no rule needed (the
			// executable's digest), and the new rules may need it.
			if c, err = s.attest(ctx); err != nil {
				return err
			}
			if entries = s.match(c); len(entries) == 0 {
				return errNoIdentity
			}
		}
	}
}

// federatedWith returns the foreign trust domains any of entries federates
// with.
func federatedWith(entries []registry.Entry) map[spiffeid.TrustDomain]bool {
	out := map[spiffeid.TrustDomain]bool{}
	for _, e := range entries {
		for _, td := range e.FederatesWith {
			out[td] = true
		}
	}
	return out
}

// visible reports whether a caller whose identities federate with fed sees
// the bundle of td: its own trust domain's always, a foreign one only if
// federated with.
func (s *Server) visible(td spiffeid.TrustDomain, fed map[spiffeid.TrustDomain]bool) bool {
	return td == s.cfg.TrustDomain || fed[td]
}

func (s *Server) x509SVIDResponse(svids []*cache.SVID, fed map[spiffeid.TrustDomain]bool) *workload.X509SVIDResponse {
	resp := &workload.X509SVIDResponse{Svids: make([]*workload.X509SVID, 0, len(svids))}
	bundles := s.bundleDER()
	for td, der := range bundles {
		if td != s.cfg.TrustDomain && fed[td] {
			if resp.FederatedBundles == nil {
				resp.FederatedBundles = map[string][]byte{}
			}
			resp.FederatedBundles[td.IDString()] = der
		}
	}
	for _, svid := range svids {
		resp.Svids = append(resp.Svids, &workload.X509SVID{
			SpiffeId:    svid.Entry.ID.String(),
			X509Svid:    svid.ChainDER,
			X509SvidKey: svid.KeyDER,
			Bundle:      bundles[svid.Entry.ID.TrustDomain()],
			Hint:        svid.Entry.Hint,
		})
	}
	return resp
}

func (s *Server) issueError(err error) error {
	s.cfg.Logger.Error("could not issue SVID", "error", err)
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "canceled")
	}
	return status.Error(codes.Unavailable, "could not issue an SVID; try again")
}

// count records a unary call's final code.
func (s *Server) count(method string, err *error) {
	s.cfg.Metrics.Requests.WithLabelValues(method, status.Code(*err).String()).Inc()
}

// track counts an open stream and, when it ends, its final code.
func (s *Server) track(method string) func(*error) {
	g := s.cfg.Metrics.OpenStreams.WithLabelValues(method)
	g.Inc()
	return func(err *error) {
		g.Dec()
		s.cfg.Metrics.Requests.WithLabelValues(method, status.Code(*err).String()).Inc()
	}
}

// bundleDER encodes each bundle as the Workload API wants it: the DER of
// its CA certificates, concatenated.
func bundleDER(snap bundle.Snapshot) map[spiffeid.TrustDomain][]byte {
	out := make(map[spiffeid.TrustDomain][]byte, len(snap.Bundles))
	for td, b := range snap.Bundles {
		var der []byte
		for _, c := range b.X509Authorities() {
			der = append(der, c.Raw...)
		}
		out[td] = der
	}
	return out
}
