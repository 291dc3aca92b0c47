package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/cmd/sworn/cli"
	"github.com/sworn-id/sworn/internal/testutil"
)

// TestSVIDWatchersStopWithoutAWatchError: cancelling `svid watch` or `svid
// write` (what SIGINT and SIGTERM do) ends the Workload API streams, which
// go-spiffe reports to the watcher as an error before it returns; that is
// a clean stop, not a "watch error (retrying)" to print. go-spiffe calls
// the watcher before Execute returns, so the output is complete once it has.
func TestSVIDWatchersStopWithoutAWatchError(t *testing.T) {
	a := agenttest.Start(t, agenttest.Config(t))
	for _, tc := range []struct {
		name  string
		args  []string
		ready []string // printed once every stream is up
	}{
		{name: "svid watch", args: []string{"svid", "watch"}, ready: []string{"SPIFFE ID:"}},
		{name: "svid write", args: []string{"svid", "write", "--dir", t.TempDir(), "--jwt-bundle-file-name", "jwt_bundle.json"},
			ready: []string{"wrote spiffe://", "wrote JWT bundle"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := cli.NewCommand(ctx)
			out := &testutil.Buffer{}
			cmd.SetOut(out)
			cmd.SetErr(out)
			cmd.SetArgs(append(tc.args, "--socket", a.Config.SocketPath))
			done := make(chan error, 1)
			go func() { done <- cmd.Execute() }()
			testutil.Eventually(t, tc.name+" to receive from the agent", func() bool {
				for _, s := range tc.ready {
					if !strings.Contains(out.String(), s) {
						return false
					}
				}
				return true
			})
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("sworn %s: %v\n%s", tc.name, err, out.String())
				}
			case <-time.After(testutil.WaitTimeout):
				t.Fatalf("sworn %s did not stop when cancelled\n%s", tc.name, out.String())
			}
			if strings.Contains(out.String(), "error") {
				t.Fatalf("sworn %s printed an error on a clean stop:\n%s", tc.name, out.String())
			}
		})
	}
}
