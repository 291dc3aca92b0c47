package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// writeStatus records what `svid write` has written and until when it is
// good, for the readiness probe: ready means every configured file was
// written and what it holds has not expired.
type writeStatus struct {
	now                     func() time.Time
	svidName, jwtBundleName string // for naming them when they are not ready

	mu        sync.Mutex
	x509      *time.Time           // nil: not configured; zero: not yet written
	jwtBundle *bool                // nil: not configured
	jwtSVIDs  map[string]time.Time // file → expiry; zero: not yet written
}

func newWriteStatus(p *writePlan, now func() time.Time) *writeStatus {
	s := &writeStatus{now: now, svidName: p.svidName, jwtBundleName: p.jwtBundleName, jwtSVIDs: map[string]time.Time{}}
	if p.x509() {
		s.x509 = &time.Time{}
	}
	if p.jwtBundleName != "" {
		s.jwtBundle = new(bool)
	}
	for _, t := range p.jwtSVIDs {
		s.jwtSVIDs[t.file] = time.Time{}
	}
	return s
}

func (s *writeStatus) x509Written(until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.x509 = until
}

func (s *writeStatus) jwtBundleWritten() {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.jwtBundle = true
}

func (s *writeStatus) jwtSVIDWritten(file string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwtSVIDs[file] = until
}

// healthView is the probes' JSON body. NotReady names each file that keeps
// /ready at 503 and why, so an operator reading a failed probe knows which
// file to look at.
type healthView struct {
	Status    string            `json:"status"`
	X509      string            `json:"x509,omitempty"`
	JWTBundle string            `json:"jwt_bundle,omitempty"`
	JWTSVIDs  map[string]string `json:"jwt_svids,omitempty"`
	NotReady  []string          `json:"not_ready,omitempty"`
}

// view says, per file, "current", "unwritten" or "expired"; ready is
// NotReady being empty.
func (s *writeStatus) view() (healthView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	v := healthView{JWTSVIDs: map[string]string{}}
	state := func(file string, until time.Time) string {
		switch {
		case until.IsZero():
			v.NotReady = append(v.NotReady, file+": not written yet")
			return "unwritten"
		case !now.Before(until):
			v.NotReady = append(v.NotReady, fmt.Sprintf("%s: expired at %s", file, until.UTC().Format(time.RFC3339)))
			return "expired"
		}
		return "current"
	}
	if s.x509 != nil {
		v.X509 = state(s.svidName, *s.x509)
	}
	if s.jwtBundle != nil {
		v.JWTBundle = "current"
		if !*s.jwtBundle {
			v.JWTBundle = "unwritten"
			v.NotReady = append(v.NotReady, s.jwtBundleName+": not written yet")
		}
	}
	for f, until := range s.jwtSVIDs {
		v.JWTSVIDs[f] = state(f, until)
	}
	slices.Sort(v.NotReady)
	return v, len(v.NotReady) == 0
}

// serveHealth answers liveness (the process is up) at live and readiness
// (every file written and current) at ready until ctx ends.
func serveHealth(ctx context.Context, addr, live, ready string, s *writeStatus) (net.Addr, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("svid write: health listener: %w", err)
	}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v healthView, ok bool) {
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		v.Status = http.StatusText(code)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc(live, func(w http.ResponseWriter, _ *http.Request) {
		v, _ := s.view()
		reply(w, v, true)
	})
	mux.HandleFunc(ready, func(w http.ResponseWriter, _ *http.Request) {
		v, ok := s.view()
		reply(w, v, ok)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return ln.Addr(), done, nil
}
