package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/cli"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// The README promises that --socket takes a path; a relative one used to
// become unix://run/w.sock, whose "run" gRPC reads as the URI's authority
// ("invalid (non-empty) authority"). Agent and client commands both take
// it relative to where they run.
func TestRelativeSocketPaths(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() {
		cmd := cli.NewCommand(ctx)
		cmd.SetOut(&strings.Builder{})
		cmd.SetErr(&strings.Builder{})
		cmd.SetArgs([]string{"agent", "--dev", "--socket", "run/w.sock", "--admin-socket", "run/a.sock", "--data-dir", "data", "--health-addr", "127.0.0.1:0"})
		agentDone <- cmd.Execute()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-agentDone; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	waitForFile(t, "run/a.sock", agentDone)

	if out := clitest.Run(t, "svid", "fetch", "--socket", "run/w.sock"); !strings.Contains(out, "spiffe://example.org/uid/") {
		t.Fatalf("svid fetch over a relative socket path printed:\n%s", out)
	}
	if out := clitest.Run(t, "status", "--admin-socket", "./run/a.sock"); !strings.Contains(out, "example.org") {
		t.Fatalf("status over a relative admin socket path printed:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join("data")); err != nil {
		t.Fatalf("relative --data-dir not used: %v", err)
	}
}

// waitForFile waits until path exists, failing early if the agent ends.
func waitForFile(t *testing.T, path string, agentDone chan error) {
	t.Helper()
	testutil.Eventually(t, path+" to appear", func() bool {
		select {
		case err := <-agentDone:
			agentDone <- nil // for the cleanup, which waits on it
			t.Fatalf("agent ended before %s appeared: %v", path, err)
		default:
		}
		_, err := os.Stat(path)
		return err == nil
	})
}
