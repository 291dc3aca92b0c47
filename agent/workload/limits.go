package workload

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sworn-id/sworn/agent/connlimit"
	"github.com/sworn-id/sworn/agent/peer"
)

// Limits bound what one uid can make the server hold.
type Limits struct {
	// StreamsPerUID bounds the calls (streams and unary calls) one uid has
	// open at once over all its connections; zero means no bound.
	StreamsPerUID int
	// SendTimeout is how long a send may stay blocked on a caller that
	// reads nothing before its connection is closed; zero means forever.
	SendTimeout time.Duration
}

// ServerOptions returns the interceptors that enforce the server's Limits;
// give them to the grpc.Server that serves it (and health and reflection,
// which they bound too).
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			release, err := s.admitCall(ctx)
			if err != nil {
				return nil, err
			}
			defer release()
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			release, err := s.admitCall(ss.Context())
			if err != nil {
				return err
			}
			defer release()
			if conn, ok := connlimit.FromContext(ss.Context()); ok && s.cfg.Limits.SendTimeout > 0 {
				ss = &watchedStream{ServerStream: ss, s: s, conn: conn}
			}
			return h(srv, ss)
		}),
	}
}

// admitCall counts a call against its uid's bound, or refuses it with
// ResourceExhausted.
func (s *Server) admitCall(ctx context.Context) (func(), error) {
	info, ok := peer.FromContext(ctx)
	if s.streams.Limit <= 0 || !ok {
		return func() {}, nil
	}
	c := info.Caller()
	release, ok := s.streams.Acquire(c.UID)
	if !ok {
		s.cfg.Metrics.StreamsRefused.Inc()
		if ok, suppressed := s.refusals.Allow(); ok {
			s.cfg.Logger.Warn("refused a Workload API call: its uid has as many open as allowed",
				"pid", c.PID, "uid", c.UID, "limit", s.streams.Limit, "refusals_not_logged", suppressed)
		}
		return nil, status.Errorf(codes.ResourceExhausted,
			"uid %d has %d calls open, the most one uid may (limits.max_streams_per_uid); close some and retry", c.UID, s.streams.Limit)
	}
	return release, nil
}

// watchedStream closes its connection when a send stays blocked longer
// than SendTimeout. gRPC's flow control blocks a send once the caller has
// not read a window's worth; only closing the connection cancels the
// stream, frees the goroutine and drops what is queued.
type watchedStream struct {
	grpc.ServerStream
	s    *Server
	conn *connlimit.Conn
}

func (w *watchedStream) SendMsg(m any) error {
	var fired atomic.Bool
	timeout := w.s.cfg.Limits.SendTimeout
	t := w.s.cfg.Clock.AfterFunc(timeout, func() {
		fired.Store(true)
		c := w.conn.Caller()
		w.s.cfg.Metrics.StalledSends.Inc()
		w.s.cfg.Logger.Warn("closing a Workload API connection: a send to it stayed blocked (the caller reads nothing)",
			"pid", c.PID, "uid", c.UID, "timeout", timeout)
		_ = w.conn.Close()
	})
	err := w.ServerStream.SendMsg(m)
	t.Stop()
	if err != nil && fired.Load() {
		return status.Errorf(codes.Unavailable, "send blocked for over %v; connection closed", timeout)
	}
	return err
}
