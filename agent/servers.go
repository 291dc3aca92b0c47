package agent

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/sworn-id/sworn/agent/admin"
	"github.com/sworn-id/sworn/agent/connlimit"
	"github.com/sworn-id/sworn/agent/peer"
	"github.com/sworn-id/sworn/agent/telemetry"
	"github.com/sworn-id/sworn/agent/workload"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/unixsock"
)

// listeners are the agent's three sockets, all opened before anything
// serves so that a taken address stops the agent at once.
type listeners struct {
	workload *peer.Listener
	conns    *connlimit.Listener // workload, with the connection limits
	admin    *peer.Listener
	health   net.Listener
	opened   []io.Closer // in the order opened
	sockets  []string    // socket files this agent created
}

// listen opens the workload socket (any uid may connect), the admin socket
// (0600, owned by admin_uid if set) and the health address. On an error it
// closes what it opened.
func (a *Agent) listen() (*listeners, error) {
	ls := &listeners{}
	var err error
	if ls.workload, err = ls.unix(a.cfg.SocketPath, 0o777, nil); err != nil {
		return nil, err
	}
	if ls.admin, err = ls.unix(a.cfg.AdminSocketPath, 0o600, a.cfg.AdminUID); err != nil {
		ls.close()
		return nil, err
	}
	if ls.health, err = net.Listen("tcp", a.cfg.HealthAddr); err != nil {
		ls.close()
		return nil, fmt.Errorf("agent: health endpoint: %w", err)
	}
	ls.opened = append(ls.opened, ls.health)
	if !ls.workload.PeerPIDFD() {
		a.log.Warn("kernel lacks SO_PEERPIDFD; PID-reuse protection opens the caller's pidfd at accept time instead")
	}
	if !ls.workload.SocketCheck() {
		a.log.Warn("kernel does not answer unix sock_diag queries (CONFIG_UNIX_DIAG); a caller that hands its connection to another process is not detected")
	}
	ls.conns = a.limitConnections(ls.workload)
	return ls, nil
}

func (ls *listeners) unix(path string, mode fs.FileMode, owner *uint32) (*peer.Listener, error) {
	l, err := listenUnix(path, mode, owner)
	if err != nil {
		return nil, err
	}
	ls.opened = append(ls.opened, l)
	ls.sockets = append(ls.sockets, path)
	return l, nil
}

// close closes every listener (a server may have closed some already) and
// removes the socket files this agent created, never another's.
func (ls *listeners) close() {
	for _, l := range ls.opened {
		_ = l.Close()
	}
	for _, path := range ls.sockets {
		_ = os.Remove(path)
	}
}

// servers are the agent's three endpoints, built but not yet serving.
type servers struct {
	workload *grpc.Server
	health   *health.Server // gRPC health on the workload socket
	admin    *grpc.Server
	tel      *telemetry.Server
	done     chan struct{} // closed to end every Workload API stream
}

func (a *Agent) newServers() *servers {
	s := &servers{done: make(chan struct{}), tel: &telemetry.Server{Metrics: a.metrics, Ready: a.readiness, PProf: a.cfg.Debug.PProf, Log: a.log.With("component", "health")}}
	s.workload, s.health = a.newWorkloadServer(s.done)
	s.admin = a.newAdminServer()
	return s
}

// newWorkloadServer is the Workload API (and Envoy SDS) with gRPC health
// and reflection; its streams end when done is closed.
func (a *Agent) newWorkloadServer(done <-chan struct{}) (*grpc.Server, *health.Server) {
	var jwt workload.JWTSource
	if signer, ok := a.auth.(ca.JWTSigner); ok && (a.cfg.CA.Type != "vault" || a.cfg.CA.Vault.JWT.Key != "") {
		jwt = a.newJWTCache(signer)
	}
	wl := workload.New(workload.Config{
		JWT:         jwt,
		TrustDomain: a.cfg.TrustDomainID(),
		Attestor:    a.attestor,
		Registry:    a.registry,
		Cache:       workload.FromCache(a.cache),
		Bundles:     a.bundles,
		Logger:      a.log.With("component", "workload"),
		Metrics:     a.metrics,
		Limits:      workload.Limits{StreamsPerUID: a.cfg.Limits.MaxStreamsPerUID, SendTimeout: a.cfg.Limits.StreamSendTimeout},
		SDS:         workload.SDSNames{DefaultSVID: a.cfg.SDS.DefaultSVIDName, DefaultBundle: a.cfg.SDS.DefaultBundleName, AllBundles: a.cfg.SDS.DefaultAllBundlesName},
	}, done)
	srv := grpc.NewServer(a.workloadServerOptions(wl)...)
	wl.Register(srv)
	wl.RegisterSDS(srv)
	h := health.NewServer()
	healthpb.RegisterHealthServer(srv, h)
	reflection.Register(srv)
	return srv, h
}

// newAdminServer is the admin API, for root, the agent's own uid and
// admin_uid.
func (a *Agent) newAdminServer() *grpc.Server {
	allowed := []uint32{uint32(os.Geteuid())}
	if a.cfg.AdminUID != nil {
		allowed = append(allowed, *a.cfg.AdminUID)
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
		Started:            a.started,
		AllowedUIDs:        allowed,
		Bundles:            a.bundles,
		RefreshHint:        a.cfg.Federation.BundleEndpoint.RefreshHint,
		Logger:             a.log.With("component", "admin"),
	})
	srv := grpc.NewServer(grpc.Creds(peer.Credentials()), grpc.UnaryInterceptor(adm.UnaryInterceptor))
	adm.Register(srv)
	return srv
}

// serve starts the three servers as tasks.
func (s *servers) serve(ctx context.Context, ls *listeners, run func(string, func() error)) {
	run("workload api", func() error { return s.workload.Serve(ls.conns) })
	run("admin api", func() error { return s.admin.Serve(ls.admin) })
	run("health", func() error { return s.tel.Serve(ctx, ls.health) })
}

// stop is steps 1 to 3 of Run's shutdown.
func (s *servers) stop() {
	s.health.Shutdown()
	close(s.done)
	stopGracefully(s.workload, 10*time.Second)
	stopGracefully(s.admin, 5*time.Second)
}

// listenUnix listens at path with the given mode (see unixsock.Listen),
// with peer credentials read on every connection.
func listenUnix(path string, mode fs.FileMode, owner *uint32) (*peer.Listener, error) {
	l, err := unixsock.Listen(path, mode, owner)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return peer.Listen(l), nil
}
