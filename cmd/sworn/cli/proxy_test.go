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

// badProxyFlags are flag sets `sworn proxy` must refuse before it starts,
// each with the words its error must contain.
var badProxyFlags = []struct {
	name    string
	args    []string
	wantErr string
}{
	{name: "no target", args: []string{"--listen", ":0"}, wantErr: "--listen and --target are required"},
	{name: "no listen", args: []string{"--target", "x:1"}, wantErr: "--listen and --target are required"},
	{name: "client and http", args: []string{"--listen", ":0", "--target", "x:1", "--client", "--http"},
		wantErr: "--client and --http exclude each other"},
	{name: "wildcard inside a segment", args: []string{"--listen", ":0", "--target", "x:1", "--allow", "spiffe://example.org/a*"},
		wantErr: `pattern "spiffe://example.org/a*": a wildcard must be a whole segment`},
	{name: "allow-http without http", args: []string{"--listen", ":0", "--target", "x:1", "--allow-http", "spiffe://example.org/a GET /x"},
		wantErr: "--allow-http needs --http"},
}

func TestProxyRefusesBadFlags(t *testing.T) {
	// No agent and a short fetch timeout: a flag set that slipped past
	// validation fails fast with "no SVID from the Workload API" instead
	// of the expected message, rather than after the 30s default.
	noAgent := []string{"--workload-api", "unix://" + filepath.Join(t.TempDir(), "no-agent.sock"), "--fetch-timeout", "100ms"}
	for _, tt := range badProxyFlags {
		t.Run(tt.name, func(t *testing.T) {
			cmd := cli.NewCommand(context.Background())
			cmd.SetOut(&strings.Builder{})
			cmd.SetErr(&strings.Builder{})
			cmd.SetArgs(append(append([]string{"proxy"}, tt.args...), noAgent...))
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("sworn proxy %s: %v, want an error containing %q", strings.Join(tt.args, " "), err, tt.wantErr)
			}
		})
	}
}
