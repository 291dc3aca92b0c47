package agent

import (
	"google.golang.org/grpc"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/connlimit"
	"github.com/sworn-id/sworn/agent/peer"
	"github.com/sworn-id/sworn/agent/workload"
	"github.com/sworn-id/sworn/ca"
)

// Bounds of the Workload API's gRPC transport. Its requests are small (the
// largest, a JWT-SVID request, is under 20 KiB within the audience bounds),
// and the fixed 64 KiB flow-control windows stop gRPC from growing them (up
// to 16 MiB by default) for a client that sends fast.
const (
	workloadMaxRecvMsgSize = 64 << 10
	workloadWindowSize     = 64 << 10
	workloadHeaderListSize = 64 << 10
	// Small read buffers and a write buffer shared between flushes (gRPC's
	// default since 1.66) keep an idle connection cheap: gRPC's default
	// buffer sizes hold 64 KiB per connection.
	workloadReadBufferSize  = 4 << 10
	workloadWriteBufferSize = 16 << 10
)

// limitConnections raises the open-file limit and wraps l with the
// per-uid and total connection limits, the total leaving
// limits.reserved_fds descriptors for the admin socket and the rest.
func (a *Agent) limitConnections(l *peer.Listener) *connlimit.Listener {
	nofile, err := raiseFileLimit()
	if err != nil {
		nofile = fallbackFileLimit
		a.log.Warn("could not read or raise the open-file limit; assuming the common default", "assumed", nofile, "error", err)
	}
	lim := a.cfg.Limits
	conns := connlimit.New(l, connlimit.Config{
		PerUID: lim.UIDConnectionCap(nofile),
		Total:  lim.ConnectionCap(nofile),
		OnRefuse: func(r connlimit.Reason) {
			a.metrics.ConnectionsRefused.WithLabelValues(string(r)).Inc()
		},
		Logger: a.log.With("component", "workload"),
	})
	a.log.Info("workload API connection limits", "open_files", nofile,
		"max_connections", lim.ConnectionCap(nofile), "max_connections_per_uid", lim.UIDConnectionCap(nofile),
		"reserved_fds", lim.ReservedFDs, "max_streams_per_uid", lim.MaxStreamsPerUID)
	a.conns.Store(conns)
	return conns
}

// workloadServerOptions are the Workload API server's credentials, limits
// and transport bounds.
func (a *Agent) workloadServerOptions(wl *workload.Server) []grpc.ServerOption {
	opts := append([]grpc.ServerOption{grpc.Creds(connlimit.Credentials(peer.Credentials()))},
		workloadTransportOptions(a.cfg.Limits.MaxStreamsPerConnection)...)
	return append(opts, wl.ServerOptions()...)
}

// workloadTransportOptions are the Workload API's HTTP/2 transport bounds,
// which the benchmarks' floor server shares.
func workloadTransportOptions(maxStreamsPerConnection int) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(uint32(maxStreamsPerConnection)),
		grpc.MaxRecvMsgSize(workloadMaxRecvMsgSize),
		grpc.InitialWindowSize(workloadWindowSize),
		grpc.InitialConnWindowSize(workloadWindowSize),
		grpc.MaxHeaderListSize(workloadHeaderListSize),
		grpc.ReadBufferSize(workloadReadBufferSize),
		grpc.WriteBufferSize(workloadWriteBufferSize),
	}
}

func (a *Agent) newJWTCache(signer ca.JWTSigner) *cache.JWTCache {
	j := &cache.JWTCache{
		Signer:         a.jwtSigner(signer),
		TTL:            a.cfg.SVID.JWTTTL,
		MaxBytes:       a.cfg.Limits.JWTCacheBytes,
		MaxBytesPerUID: a.cfg.Limits.JWTCacheBytesPerUID,
		Metrics:        a.metrics,
	}
	a.jwt.Store(j)
	return j
}

// connectionsReady fails while a connection limit is reached, so /ready
// shows that workloads are being refused.
func (a *Agent) connectionsReady() error {
	if c := a.conns.Load(); c != nil {
		return c.Saturated()
	}
	return nil
}

func (a *Agent) openConnections() int {
	if c := a.conns.Load(); c != nil {
		return c.Open()
	}
	return 0
}

func (a *Agent) jwtCacheBytes() int {
	if j := a.jwt.Load(); j != nil {
		total, _ := j.BytesOf(0)
		return total
	}
	return 0
}

// fallbackFileLimit is assumed when the open-file limit cannot be read:
// the usual soft limit, so the derived cap errs on the low side.
const fallbackFileLimit = 1024
