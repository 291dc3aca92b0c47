package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/cmd/sworn/proxy"
	"github.com/sworn-id/sworn/trust"
)

// records is a slog handler that hands every record's message and
// attributes to a channel, so a test waits for the line it expects.
type records chan map[string]string

func (r records) Enabled(context.Context, slog.Level) bool { return true }
func (r records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r records) WithGroup(string) slog.Handler            { return r }
func (r records) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]string{"msg": rec.Message}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	r <- m
	return nil
}

// next returns the next record with message msg.
func (r records) next(t *testing.T, msg string) map[string]string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-r:
			if m["msg"] == msg {
				return m
			}
		case <-timeout:
			t.Fatalf("no %q log line within 10s", msg)
		}
	}
}

// TestRefusalLogsVerifiedPeer: a peer refused by the policy inside the
// handshake presented a valid SVID, so the audit line names it; a peer
// whose certificate does not verify is logged without the ID it claims.
func TestRefusalLogsVerifiedPeer(t *testing.T) {
	a := startAgent(t)
	foreign := agenttest.Start(t, agenttest.Config(t, config.Rule{SPIFFEID: "spiffe://example.org/client-ok", Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Geteuid())}}))
	foreignSVID, err := foreign.Source(t).GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	serverOnly := guard(t, []string{"spiffe://example.org/server"}, nil)
	rule, err := trust.ParseHTTPRule("spiffe://example.org/client-ok GET /api/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []proxy.Mode{proxy.ModeServer, proxy.ModeHTTP} {
		t.Run(string(mode), func(t *testing.T) {
			logs := make(records, 64)
			g := guard(t, []string{"spiffe://example.org/client-ok"}, nil)
			if mode == proxy.ModeHTTP {
				g = trust.NewGuard(mustPolicy(t).WithHTTPRules(rule), trust.ForHTTP())
			}
			addr := runProxy(t, proxy.Config{Mode: mode, Target: newBackend(t).addr, Source: as(t, a, "/server"),
				Guard: g, Logger: slog.New(logs)})

			tests := []struct {
				name       string
				src        trust.Source
				wantPeer   string
				wantReason string
			}{
				{name: "refused by policy", src: as(t, a, "/client-other"), wantPeer: "spiffe://example.org/client-other", wantReason: "policy"},
				{name: "SVID from a foreign CA", src: staticSource{foreignSVID, as(t, a, "/client-ok")}, wantPeer: "", wantReason: "handshake"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if got, err := roundTrip(trust.ClientConfig(tt.src, serverOnly), addr, "x"); err == nil {
						t.Fatalf("a refused peer got %q back", got)
					}
					line := logs.next(t, "connection refused")
					if line["peer"] != tt.wantPeer || line["reason"] != tt.wantReason {
						t.Fatalf("logged peer=%q reason=%q, want peer=%q reason=%q (%v)", line["peer"], line["reason"], tt.wantPeer, tt.wantReason, line)
					}
				})
			}
		})
	}
}
