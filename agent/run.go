package agent

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	k8scache "k8s.io/client-go/tools/cache"

	"github.com/sworn-id/sworn/internal/version"
)

// Run serves until ctx ends or one of the agent's tasks fails, and returns
// that task's error (nil when ctx ended).
//
// Every part of the running agent is a task in one errgroup: the CA loop,
// the pod watch, the SVID cache, the bundle sync, each federated bundle
// watch, the bundle endpoint, OIDC discovery, the Workload API, the admin
// API and the health endpoint. The group's context ends at the first
// failure (or when ctx ends), and then the agent shuts down in this order,
// so that no caller sees a half-stopped agent:
//
//  1. /ready and gRPC health say not serving;
//  2. every Workload API stream ends, which GracefulStop would otherwise
//     wait for;
//  3. the Workload API stops gracefully (at most 10 s, then hard), then the
//     admin API (at most 5 s), while the CA and the cache still run for
//     the calls in flight;
//  4. the other tasks are cancelled and awaited;
//  5. the listeners are closed and the socket files removed;
//  6. the data dir lock is released.
func (a *Agent) Run(ctx context.Context) error {
	defer a.lock.release()
	ls, err := a.listen()
	if err != nil {
		return err
	}
	srv := a.newServers()
	runCtx, cancel := context.WithCancel(ctx) // ends the tasks at step 4
	defer cancel()
	g, failed := errgroup.WithContext(ctx)
	run := func(name string, f func() error) {
		g.Go(func() error {
			if err := f(); err != nil {
				return fmt.Errorf("agent: %s: %w", name, err)
			}
			return nil
		})
	}
	a.runBackground(runCtx, run)
	// Federation and OIDC before the servers: a bad endpoint address must
	// stop the agent before anything serves.
	err = a.runFederation(runCtx, run)
	if err == nil {
		err = a.runOIDC(runCtx, run)
	}
	if err != nil {
		cancel()
		_ = g.Wait()
		ls.close()
		return err
	}
	a.waitForPods(ctx)
	srv.serve(runCtx, ls, run)
	a.listening.Store(true)
	// Logged before Ready closes, so whoever waits on Ready finds it.
	v := version.Get()
	a.log.Info("sworn agent serving",
		"trust_domain", a.cfg.TrustDomain, "ca", a.cfg.CA.Type,
		"workload_socket", a.cfg.SocketPath, "admin_socket", a.cfg.AdminSocketPath,
		"health_addr", ls.health.Addr().String(), "rules", a.registry.Len(),
		"version", v.Version, "commit", v.Commit, "go_version", v.GoVersion)
	close(a.ready)

	<-failed.Done()
	var runErr error
	if ctx.Err() == nil {
		runErr = context.Cause(failed)
		a.log.Error("shutting down after a failure", "error", runErr)
	}
	a.listening.Store(false)
	srv.stop()
	cancel()
	// Errors returned once the shutdown began are its consequences, not
	// why the agent stopped.
	_ = g.Wait()
	ls.close()
	a.log.Info("sworn agent stopped")
	return runErr
}

// podSyncWait bounds how long the agent waits, before it serves, for its
// first view of the node's pods (and of the ClusterSPIFFEID objects):
// served earlier, a pod's first call would be refused for want of rules
// that are on their way. After it the agent serves anyway, since the
// config's rules and the processes outside pods need no API server.
const podSyncWait = 10 * time.Second

func (a *Agent) waitForPods(ctx context.Context) {
	if a.podsReady == nil {
		return
	}
	wait, cancel := context.WithTimeout(ctx, podSyncWait)
	defer cancel()
	if !k8scache.WaitForCacheSync(wait.Done(), a.podsReady) && ctx.Err() == nil {
		a.log.Warn("serving before the first view of the node's pods and ClusterSPIFFEID objects; pods are refused identities that need them until it comes (see /ready and the log above)", "waited", podSyncWait)
	}
}

// runBackground starts the tasks that serve nothing themselves: the CA
// loop, the pod watch, the SVID cache, the renewal of failed SVIDs when the
// CA returns, the bundle sync and the re-issue after a CA change.
func (a *Agent) runBackground(ctx context.Context, run func(string, func() error)) {
	run("ca", func() error { return a.runCA(ctx) })
	if a.runPods != nil {
		run("pods", func() error { a.runPods(ctx); return nil })
	}
	run("cache", func() error { return a.cache.Run(ctx) })
	run("ca-recovery", func() error { a.retryWhenCAReturns(ctx); return nil })
	run("bundles", func() error { a.syncBundles(ctx); return nil })
	run("reissue", func() error { a.reissueAll(ctx); return nil })
}

// stopGracefully stops s, waiting at most timeout for its calls to end
// before cutting them off.
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
