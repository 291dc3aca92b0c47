package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sworn-id/sworn/internal/version"
)

// serveState is where Serve is, for /_status.
type serveState int32

const (
	stateInitializing serveState = iota
	stateListening
	stateDraining
)

func (s serveState) String() string {
	switch s {
	case stateListening:
		return "listening"
	case stateDraining:
		return "draining"
	}
	return "initializing"
}

// Status is the JSON /_status serves. Its first fields are ghostunnel's, so
// probes and dashboards written for ghostunnel read it as they are; fields
// are only ever added.
type Status struct {
	// OK is Ready and BackendOK; /_status answers 503 when it is false.
	OK     bool   `json:"ok"`
	Status string `json:"status"` // "ok" or "critical", as ghostunnel
	// Message is initializing, listening or draining, or why the proxy is
	// not ready.
	Message       string `json:"message"`
	BackendOK     bool   `json:"backend_ok"`
	BackendStatus string `json:"backend_status"` // "ok" or "critical"
	BackendError  string `json:"backend_error,omitempty"`
	// Ready: listening, and holding an SVID that has not expired.
	Ready bool `json:"ready"`
	// SPIFFEID and SVIDExpiresAt describe the SVID the proxy presents now.
	SPIFFEID      string     `json:"spiffe_id,omitempty"`
	SVIDExpiresAt *time.Time `json:"svid_expires_at,omitempty"`
	Mode          Mode       `json:"mode"`
	Time          time.Time  `json:"time"`
	Hostname      string     `json:"hostname,omitempty"`
	Revision      string     `json:"revision"`
	Compiler      string     `json:"compiler"`
}

// StatusHandler serves, as ghostunnel's --status does, /_status (Status as
// JSON, 503 unless OK) and the metrics in g on /_metrics and
// /_metrics/prometheus, and on /metrics for Prometheus's default path.
func (p *Proxy) StatusHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/_status", func(w http.ResponseWriter, r *http.Request) {
		st := p.Status(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !st.OK {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	metrics := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	for _, path := range []string{"/_metrics", "/_metrics/prometheus", "/metrics"} {
		mux.Handle(path, metrics)
	}
	return mux
}

// Status reports the proxy's state now, checking the backend as ghostunnel
// does: in server and HTTP mode the target must accept a connection; in
// client mode it must complete the mTLS handshake and pass the policy, so a
// server the policy refuses shows as a critical backend.
func (p *Proxy) Status(ctx context.Context) Status {
	info := version.Get()
	st := Status{Mode: p.cfg.Mode, Time: p.cfg.Now().UTC(), Revision: info.Version, Compiler: info.GoVersion,
		BackendOK: true, BackendStatus: "ok"}
	st.Hostname, _ = os.Hostname()
	state := serveState(p.state.Load())
	st.Message = state.String()
	st.Ready = state == stateListening
	if svid, err := p.cfg.Source.GetX509SVID(); err != nil {
		st.Ready, st.Message = false, "no SVID: "+err.Error()
	} else {
		exp := svid.Certificates[0].NotAfter.UTC()
		st.SPIFFEID, st.SVIDExpiresAt = svid.ID.String(), &exp
		if !st.Time.Before(exp) {
			st.Ready, st.Message = false, "SVID expired at "+exp.Format(time.RFC3339)+": is the agent running?"
		}
	}
	if err := p.checkBackend(ctx); err != nil {
		st.BackendOK, st.BackendStatus, st.BackendError = false, "critical", err.Error()
	}
	st.OK = st.Ready && st.BackendOK
	st.Status = "critical"
	if st.OK {
		st.Status = "ok"
	}
	return st
}

// checkBackend dials the target, and in client mode completes the mTLS
// handshake, within the handshake timeout.
func (p *Proxy) checkBackend(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HandshakeTimeout)
	defer cancel()
	c, err := p.dialTarget(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if p.cfg.Mode != ModeClient {
		return nil
	}
	tc := tls.Client(c, p.tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("mTLS handshake with the target: %w", err)
	}
	return tc.Close()
}
