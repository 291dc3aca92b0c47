package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// Server serves /live, /ready and /metrics.
//
// Its port is open to every local user, so it must not be a way around the
// Workload API's connection caps: it holds at most MaxConns connections at
// once (further ones wait in the kernel's backlog, using no descriptor of
// the agent's), a connection that sends no request within 5 s or idles
// 30 s between requests is closed, and no answer takes longer than 30 s.
type Server struct {
	Metrics *Metrics
	// Ready returns nil when the agent can serve workloads, else why not.
	Ready func() error
	// MaxConns bounds open connections; 0 means DefaultMaxConns.
	MaxConns int
	// IdleTimeout closes a kept-alive connection that sends no new
	// request; 0 means 30 s.
	IdleTimeout time.Duration
	// PProf serves Go's profiles at /debug/pprof/ (debug.pprof). A CPU
	// profile must ask for fewer seconds than the 30 s write timeout.
	PProf bool
	// Log receives net/http's errors (a client that hangs up, a bad
	// request line) at debug; nil discards them.
	Log *slog.Logger
}

// DefaultMaxConns is enough for probes and scrapes many times over.
const DefaultMaxConns = 64

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{Registry: s.Metrics.Registry}))
	if s.PProf {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.Handle("GET /debug/pprof/profile", capSeconds(pprof.Profile))
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.Handle("GET /debug/pprof/trace", capSeconds(pprof.Trace))
	}
	return mux
}

// writeTimeout bounds every response of the server; maxProfile is the
// longest CPU profile or trace that fits in it.
const (
	writeTimeout = 30 * time.Second
	maxProfile   = writeTimeout - 5*time.Second
)

// capSeconds runs a pprof profile or trace for at most maxProfile:
// net/http/pprof refuses (400) any duration at or past the server's write
// timeout, its default of 30 s included, so `go tool pprof <url>` with no
// seconds= would otherwise always fail.
func capSeconds(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if sec, err := strconv.ParseFloat(q.Get("seconds"), 64); err != nil || sec <= 0 || sec > maxProfile.Seconds() {
			q.Set("seconds", strconv.Itoa(int(maxProfile.Seconds())))
			r = r.Clone(r.Context())
			r.URL.RawQuery = q.Encode()
		}
		h(w, r)
	})
}

// Serve serves on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	maxConns, idle := s.MaxConns, s.IdleTimeout
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	if idle <= 0 {
		idle = 30 * time.Second
	}
	l = netutil.LimitListener(l, maxConns)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: writeTimeout, IdleTimeout: idle, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(s.logHandler(), slog.LevelDebug)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry: %w", err)
	}
	<-done
	return nil
}

func (s *Server) logHandler() slog.Handler {
	if s.Log == nil {
		return slog.DiscardHandler
	}
	return s.Log.Handler()
}
