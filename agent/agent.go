package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/renameio/v2"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/agent/admin"
	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/connlimit"
	"github.com/sworn-id/sworn/agent/peer"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/agent/secpath"
	"github.com/sworn-id/sworn/agent/telemetry"
	"github.com/sworn-id/sworn/agent/workload"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/rotation"
)

// Agent is a running node agent.
type Agent struct {
	cfg      *config.Config
	log      *slog.Logger
	metrics  *telemetry.Metrics
	auth     ca.Authority
	runCA    func(context.Context) error
	bundles  *bundle.Store
	registry *registry.Registry
	cache    *cache.Cache
	started  time.Time

	attestor  attest.Attestor
	runPods   func(context.Context)
	podsReady func() bool

	caUp      atomic.Bool
	listening atomic.Bool
	ready     chan struct{}

	conns atomic.Pointer[connlimit.Listener] // the workload listener's limits, while running
	jwt   atomic.Pointer[cache.JWTCache]
}

// New builds an agent from a validated config. It creates (or loads) the CA
// but opens no socket until Run.
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rules, err := cfg.CompileRules()
	if err != nil {
		return nil, err
	}
	logWarnings(log, cfg)
	a := &Agent{
		cfg:      cfg,
		log:      log,
		metrics:  telemetry.New(),
		bundles:  bundle.NewStore(),
		registry: registry.New(cfg.TrustDomainID(), rules),
		started:  time.Now(),
		ready:    make(chan struct{}),
	}
	a.caUp.Store(true)
	a.metrics.WatchLimits(a.openConnections, a.jwtCacheBytes)
	a.attestor = attest.Multi{&attest.Unix{}}
	if k := cfg.Kubernetes; k.Enabled {
		src, run, synced, err := podSource(k)
		if err != nil {
			return nil, err
		}
		a.attestor = append(a.attestor.(attest.Multi), &attest.Kubernetes{Source: src, NodeName: k.NodeName, ProcRoot: k.ProcRoot})
		a.runPods, a.podsReady = run, synced
	}
	if err := checkFiles(cfg, log); err != nil {
		return nil, err
	}
	a.auth, a.runCA, err = newAuthority(cfg, log.With("component", "ca"), a.observeCA)
	if err != nil {
		return nil, err
	}
	svidDir := ""
	if cfg.SVID.PersistSVIDs() {
		svidDir = filepath.Join(cfg.DataDir, "svids")
	}
	a.cache = cache.New(cache.Config{
		Signer:        a.auth,
		KeyType:       cfg.SVID.KeyType,
		MaxConcurrent: cfg.Rotation.MaxConcurrent,
		Rate:          cfg.Rotation.MaxPerSecond,
		IdleTimeout:   cfg.SVID.IdleTimeout,
		Backoff:       rotation.Backoff{Initial: time.Second, Max: time.Minute},
		Clock:         clock.RealClock{},
		Logger:        log.With("component", "cache"),
		Metrics:       a.metrics,
		OnCAResult:    a.observeCA,
		Dir:           svidDir,
	})
	trusted := a.auth.Authorities().X509
	if len(trusted) > 0 {
		a.saveBundle(trusted)
	} else {
		// The CA did not answer at start: serve the bundle it last gave us,
		// so persisted SVIDs can be restored and verified by workloads.
		if b, err := x509bundle.Load(cfg.TrustDomainID(), a.bundlePath()); err == nil {
			trusted = b.X509Authorities()
			log.Warn("CA unreachable at start; serving the last known trust bundle", "authorities", len(trusted))
		}
	}
	if len(trusted) > 0 {
		a.bundles.SetX509Authorities(cfg.TrustDomainID(), trusted)
	}
	if keys := a.auth.Authorities().JWT; len(keys) > 0 {
		a.bundles.SetJWTAuthorities(cfg.TrustDomainID(), keys)
	}
	a.cache.Restore(trusted)
	if err := a.bootstrapFederation(); err != nil {
		return nil, err
	}
	return a, nil
}

// bundlePath is where the last bundle the CA gave is kept.
func (a *Agent) bundlePath() string { return filepath.Join(a.cfg.DataDir, "bundle.pem") }

func (a *Agent) saveBundle(certs []*x509.Certificate) {
	data, err := x509bundle.FromX509Authorities(a.cfg.TrustDomainID(), certs).Marshal()
	if err == nil {
		err = os.MkdirAll(a.cfg.DataDir, 0o700)
	}
	if err == nil {
		err = renameio.WriteFile(a.bundlePath(), data, 0o644)
	}
	if err != nil {
		a.log.Warn("could not save the trust bundle", "error", err)
	}
}

// Ready is closed once the agent's sockets accept calls.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Metrics returns the agent's metrics.
func (a *Agent) Metrics() *telemetry.Metrics { return a.metrics }

// Reload replaces the rules with those of cfg. Nothing else is reloaded; a
// change elsewhere needs a restart, and is logged as such.
func (a *Agent) Reload(cfg *config.Config) error {
	if cfg.TrustDomain != a.cfg.TrustDomain {
		return fmt.Errorf("agent: trust domain changed from %q to %q; restart the agent to change it", a.cfg.TrustDomain, cfg.TrustDomain)
	}
	rules, err := cfg.CompileRules()
	if err != nil {
		return err
	}
	logWarnings(a.log, cfg)
	a.registry.Set(rules)
	a.log.Info("rules reloaded", "rules", len(rules))
	return nil
}

// logWarnings logs what the config allows but almost surely does not mean.
func logWarnings(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
}

// observeCA records whether the CA answered.
func (a *Agent) observeCA(err error) {
	up := err == nil || !errors.Is(err, ca.ErrUnavailable)
	if a.caUp.Swap(up) != up {
		if up {
			a.log.Info("CA reachable again")
		} else {
			a.log.Error("CA unreachable; cached SVIDs are still served", "error", err)
		}
	}
	if up {
		a.metrics.CAReachable.Set(1)
	} else {
		a.metrics.CAReachable.Set(0)
	}
}

func (a *Agent) readiness() error {
	switch {
	case !a.listening.Load():
		return errors.New("workload API not listening yet")
	case !a.caUp.Load():
		return errors.New("CA unreachable")
	case a.podsReady != nil && !a.podsReady():
		return errors.New("pods of this node not listed yet")
	}
	return a.connectionsReady()
}

// Run serves until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	workloadL, err := listenUnix(a.cfg.SocketPath, 0o777, nil)
	if err != nil {
		return err
	}
	adminOwner := a.cfg.AdminUID
	adminL, err := listenUnix(a.cfg.AdminSocketPath, 0o600, adminOwner)
	if err != nil {
		workloadL.Close()
		return err
	}
	healthL, err := net.Listen("tcp", a.cfg.HealthAddr)
	if err != nil {
		workloadL.Close()
		adminL.Close()
		return fmt.Errorf("agent: health endpoint: %w", err)
	}
	if !workloadL.PeerPIDFD() {
		a.log.Warn("kernel lacks SO_PEERPIDFD; PID-reuse protection opens the caller's pidfd at accept time instead")
	}
	if !workloadL.SocketCheck() {
		a.log.Warn("kernel does not answer unix sock_diag queries (CONFIG_UNIX_DIAG); a caller that hands its connection to another process is not detected")
	}

	conns := a.limitConnections(workloadL)

	done := make(chan struct{})
	var jwt workload.JWTSource
	if signer, ok := a.auth.(ca.JWTSigner); ok && (a.cfg.CA.Type != "vault" || a.cfg.CA.Vault.JWT.Key != "") {
		jwt = a.newJWTCache(signer)
	}
	wl := workload.New(workload.Config{
		JWT:         jwt,
		TrustDomain: a.cfg.TrustDomainID(),
		Attestor:    a.attestor,
		Registry:    a.registry,
		Cache:       a.cache,
		Bundles:     a.bundles,
		Logger:      a.log.With("component", "workload"),
		Metrics:     a.metrics,
		Limits:      workload.Limits{StreamsPerUID: a.cfg.Limits.MaxStreamsPerUID, SendTimeout: a.cfg.Limits.StreamSendTimeout},
	}, done)
	workloadSrv := grpc.NewServer(a.workloadServerOptions(wl)...)
	wl.Register(workloadSrv)
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(workloadSrv, healthSrv)
	reflection.Register(workloadSrv)

	allowed := []uint32{uint32(os.Geteuid())}
	if adminOwner != nil {
		allowed = append(allowed, *adminOwner)
	}
	var setFederated func(spiffeid.TrustDomain, []byte) (int, int, error)
	if len(a.cfg.Federation.TrustDomains) > 0 {
		setFederated = a.setFederatedBundle
	}
	adm := admin.New(admin.Config{
		SetFederatedBundle: setFederated,
		Attestor:           a.attestor,
		Registry:           a.registry,
		TrustDomain:        a.cfg.TrustDomainID(),
		CAType:             a.cfg.CA.Type,
		Authority:          a.auth,
		Cache:              a.cache,
		Rules:              a.registry.Len,
		Started:            a.started,
		AllowedUIDs:        allowed,
		Logger:             a.log.With("component", "admin"),
	})
	adminSrv := grpc.NewServer(grpc.Creds(peer.Credentials()), grpc.UnaryInterceptor(adm.UnaryInterceptor))
	adm.Register(adminSrv)

	tel := &telemetry.Server{Metrics: a.metrics, Ready: a.readiness}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8+len(a.cfg.Federation.TrustDomains))
	goRun := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- fmt.Errorf("agent: %s: %w", name, err)
			}
		}()
	}
	goRun("ca", func() error { return a.runCA(runCtx) })
	if a.runPods != nil {
		goRun("pods", func() error { a.runPods(runCtx); return nil })
	}
	goRun("cache", func() error { return a.cache.Run(runCtx) })
	goRun("bundles", func() error { a.syncBundles(runCtx); return nil })
	// Federation before the servers: a bad endpoint address must stop the
	// agent before anything serves.
	if err := a.runFederation(runCtx, goRun); err != nil {
		cancel()
		wg.Wait()
		workloadL.Close()
		adminL.Close()
		healthL.Close()
		return err
	}
	goRun("workload api", func() error { return workloadSrv.Serve(conns) })
	goRun("admin api", func() error { return adminSrv.Serve(adminL) })
	goRun("health", func() error { return tel.Serve(runCtx, healthL) })

	a.listening.Store(true)
	close(a.ready)
	a.log.Info("sworn agent serving",
		"trust_domain", a.cfg.TrustDomain, "ca", a.cfg.CA.Type,
		"workload_socket", a.cfg.SocketPath, "admin_socket", a.cfg.AdminSocketPath,
		"health_addr", healthL.Addr().String(), "rules", a.registry.Len())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		a.log.Error("shutting down after a failure", "error", runErr)
	}

	a.listening.Store(false)
	healthSrv.Shutdown()
	close(done) // end every stream so GracefulStop can finish
	stopGracefully(workloadSrv, 10*time.Second)
	stopGracefully(adminSrv, 5*time.Second)
	cancel()
	wg.Wait()
	_ = os.Remove(a.cfg.SocketPath)
	_ = os.Remove(a.cfg.AdminSocketPath)
	a.log.Info("sworn agent stopped")
	return runErr
}

// syncBundles publishes every change of the CA's authorities and re-issues
// all SVIDs when the signing CA changes.
func (a *Agent) syncBundles(ctx context.Context) {
	td := a.cfg.TrustDomainID()
	signing := a.auth.Authorities().Signing
	for {
		changed := a.auth.Changed()
		auths := a.auth.Authorities()
		// An empty set means the CA has not answered yet, never that
		// nothing is trusted: keep what is served.
		if len(auths.X509) > 0 && a.bundles.SetX509Authorities(td, auths.X509) {
			a.log.Info("trust bundle updated", "authorities", len(auths.X509))
			a.saveBundle(auths.X509)
		}
		if len(auths.JWT) > 0 && a.bundles.SetJWTAuthorities(td, auths.JWT) {
			a.log.Info("JWT bundle updated", "keys", len(auths.JWT))
		}
		switch {
		case auths.Signing == signing || auths.Signing == "":
		case signing == "":
			// First contact with a CA that was down at start: not a change.
			signing = auths.Signing
		default:
			signing = auths.Signing
			n := a.cache.Rotate()
			a.log.Info("signing CA changed; re-issuing every SVID", "ca", signing, "svids", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

func stopGracefully(s *grpc.Server, timeout time.Duration) {
	stopped := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(timeout):
		s.Stop()
	}
}

// listenUnix listens at path with the given mode, replacing a stale socket
// but never any other kind of file.
func listenUnix(path string, mode fs.FileMode, owner *uint32) (*peer.Listener, error) {
	// 0755 whatever the umask: workloads of other uids must reach the socket.
	if err := secpath.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("agent: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("agent: %s exists and is not a socket; refusing to replace it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("agent: another process is serving on %s; refusing to take it over", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("agent: remove stale socket: %w", err)
		}
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("agent: listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("agent: chmod %s: %w", path, err)
	}
	if owner != nil {
		if err := os.Chown(path, int(*owner), -1); err != nil {
			l.Close()
			return nil, fmt.Errorf("agent: chown %s to uid %d: %w", path, *owner, err)
		}
	}
	return peer.Listen(l), nil
}
