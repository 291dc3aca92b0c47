package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/connlimit"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/agent/telemetry"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/notify"
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
	lock     *dataDirLock // held from New until Run returns or Close

	attestor  attest.Attestor
	runPods   func(context.Context)
	podsReady func() bool

	// clock times the cache's renewals, backoff and rate cap; nil is the
	// real clock (tests of the renewal machinery set a fake one).
	clock clock.WithTicker

	caState   atomic.Int32    // a caState: whether the CA answered, and how
	caBack    notify.Notifier // notified when the CA answers after it did not
	reissue   chan string     // a signing CA to re-issue every SVID under
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
		reissue:  make(chan string, 1),
	}
	a.metrics.WatchLimits(a.openConnections, a.jwtCacheBytes)
	if err := a.newAttestor(); err != nil {
		return nil, err
	}
	if err := checkFiles(cfg, log); err != nil {
		return nil, err
	}
	// The lock comes before the first write to the data dir (checkFiles
	// only creates the directory and reads): a second agent on the same
	// data dir must be refused before it rewrites anything.
	if a.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := a.open(); err != nil {
		a.lock.release()
		return nil, err
	}
	return a, nil
}

// open loads the agent's state from the locked data dir: the CA, the trust
// bundle, persisted SVIDs and federated bundles.
func (a *Agent) open() error {
	removeTempFiles(a.cfg.DataDir, a.log)
	var err error
	a.auth, a.runCA, err = newAuthority(a.cfg, a.log.With("component", "ca"), a.observeCA)
	if err != nil {
		return err
	}
	a.cache = a.newCache()
	a.restoreSVIDs(a.bootstrapBundle())
	return a.bootstrapFederation()
}

// Close releases the data dir of an agent that will not Run (Run releases
// it when it returns), so another agent may use it. It is safe to call
// more than once.
func (a *Agent) Close() { a.lock.release() }

// newAttestor is the unix attestor, and the Kubernetes one when enabled.
func (a *Agent) newAttestor() error {
	a.attestor = attest.Multi{&attest.Unix{
		NeedDigest:     func(known attest.Set) bool { return a.registry.MayUse("unix", "sha256", known) },
		MaxDigestBytes: int64(a.cfg.Limits.MaxDigestBytes),
		Logger:         a.log.With("component", "attest"),
	}}
	k := a.cfg.Kubernetes
	if !k.Enabled {
		return nil
	}
	src, run, synced, rc, err := podSource(k)
	if err != nil {
		return err
	}
	if inf, ok := src.(*attest.InformerSource); ok && k.ClusterSPIFFEIDs.Enabled {
		if run, synced, err = a.clusterSPIFFEIDs(k, rc, inf); err != nil {
			return err
		}
	}
	a.attestor = append(a.attestor.(attest.Multi), &attest.Kubernetes{Source: src, NodeName: k.NodeName, ProcRoot: k.ProcRoot})
	a.runPods, a.podsReady = run, synced
	return nil
}

// newCache is the SVID cache, signing with the CA and keeping SVIDs in the
// data dir when the config says so.
func (a *Agent) newCache() *cache.Cache {
	cfg := a.cfg
	svidDir := ""
	if cfg.SVID.PersistSVIDs() {
		svidDir = filepath.Join(cfg.DataDir, "svids")
	}
	return cache.New(cache.Config{
		Signer:        a.auth,
		KeyType:       cfg.SVID.KeyType,
		MaxConcurrent: cfg.Rotation.MaxConcurrent,
		Rate:          cfg.Rotation.MaxPerSecond,
		ReissueSpread: cfg.Rotation.Spread(),
		IdleTimeout:   cfg.SVID.IdleTimeout,
		Backoff:       rotation.Backoff{Initial: time.Second, Max: time.Minute},
		Clock:         a.clock,
		Logger:        a.log.With("component", "cache"),
		Metrics:       a.metrics,
		OnCAResult:    a.observeCA,
		Dir:           svidDir,
	})
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
