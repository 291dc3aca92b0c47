package cli_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/cli"
)

func TestProxyFailsClearlyWhenNoSVIDArrives(t *testing.T) {
	cmd := cli.NewCommand(context.Background())
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--allow", "spiffe://example.org",
		"--workload-api", "unix://" + filepath.Join(t.TempDir(), "no-agent.sock"), "--fetch-timeout", "300ms"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "no SVID from the Workload API") || !strings.Contains(err.Error(), "is the agent running") {
		t.Fatalf("proxy without an agent: %v", err)
	}
}

func TestProxyRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"proxy", "--listen", ":0"},
		{"proxy", "--listen", ":0", "--target", "x:1", "--client", "--http"},
		{"proxy", "--listen", ":0", "--target", "x:1", "--allow", "spiffe://example.org/a*"},
		{"proxy", "--listen", ":0", "--target", "x:1", "--allow-http", "spiffe://example.org/a GET /x"},
	} {
		cmd := cli.NewCommand(context.Background())
		cmd.SetOut(&strings.Builder{})
		cmd.SetErr(&strings.Builder{})
		cmd.SetArgs(args)
		if err := cmd.Execute(); err == nil {
			t.Errorf("sworn %s was accepted", strings.Join(args, " "))
		}
	}
}
