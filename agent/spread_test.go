package agent_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// rotation.reissue_spread reaches the cache: after `rotate ca --activate`
// ten SVIDs with one minute per 100 are due over a 6 s window. Were the
// setting lost, the default (5 s per 100) would put them all within 0.5 s.
// The pacing itself is agent/cache's TestReissueIsSpreadOverItsWindow.
func TestReissueSpreadFromTheConfigPacesTheReissue(t *testing.T) {
	var rules []config.Rule
	for i := range 10 {
		rules = append(rules, config.Rule{SPIFFEID: fmt.Sprintf("spiffe://example.org/w%d", i), Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Geteuid())}})
	}
	cfg := newConfig(t, rules...)
	spread := time.Minute
	cfg.Rotation.ReissueSpread = &spread
	ta := startAgent(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(ta.Addr())); err != nil || len(x.SVIDs) != 10 {
		t.Fatalf("fetch: %v", err)
	}
	clitest.Run(t, "rotate", "ca", "--admin-socket", cfg.AdminSocketPath)
	clitest.Run(t, "rotate", "ca", "--activate", "--admin-socket", cfg.AdminSocketPath)

	// Once scheduled, those not yet re-issued are due within the window;
	// those re-issued are due at half their new life, far later.
	var lo, hi time.Time
	testutil.Eventually(t, "the re-issue to be scheduled", func() bool {
		var st adminpb.GetStatusResponse
		out := clitest.Run(t, "status", "-o", "json", "--admin-socket", cfg.AdminSocketPath)
		if err := protojson.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status -o json: %v\n%s", err, out)
		}
		lo, hi = time.Time{}, time.Time{}
		soon := 0
		for _, id := range st.GetIdentities() {
			due := id.GetNextRenewal().AsTime()
			if time.Until(due) > 10*time.Second {
				continue
			}
			soon++
			if lo.IsZero() || due.Before(lo) {
				lo = due
			}
			if due.After(hi) {
				hi = due
			}
		}
		return soon >= 5
	})
	if got := hi.Sub(lo); got < 2*time.Second || got > 7*time.Second {
		t.Fatalf("the SVIDs still to re-issue are due over %s, want about the 6 s window", got)
	}
}
