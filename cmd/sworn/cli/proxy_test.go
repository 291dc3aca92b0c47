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

const allowAll = "spiffe://example.org"

// badProxyFlags are flag sets `sworn proxy` must refuse before it starts,
// each with the words its error must contain.
var badProxyFlags = []struct {
	name    string
	args    []string
	wantErr string
}{
	{name: "no target", args: []string{"proxy", "--listen", ":0"}, wantErr: "--listen and --target are required"},
	{name: "no listen", args: []string{"proxy", "--target", "127.0.0.1:1"}, wantErr: "--listen and --target are required"},
	{name: "client and http", args: []string{"proxy", "--listen", "127.0.0.1:0", "--target", "x:1", "--client", "--http"},
		wantErr: "--client and --http exclude each other"},
	{name: "client subcommand and http", args: []string{"proxy", "client", "--listen", "127.0.0.1:0", "--target", "x:1", "--http"},
		wantErr: "unknown flag: --http"},
	{name: "server subcommand and client", args: []string{"proxy", "server", "--listen", ":0", "--target", "127.0.0.1:1", "--client"},
		wantErr: "unknown flag: --client"},
	{name: "wildcard inside a segment", args: []string{"proxy", "--listen", ":0", "--target", "127.0.0.1:1", "--allow", "spiffe://example.org/a*"},
		wantErr: `pattern "spiffe://example.org/a*": a wildcard must be a whole segment`},
	{name: "allow-http without http", args: []string{"proxy", "--listen", ":0", "--target", "127.0.0.1:1", "--allow-http", "spiffe://example.org/a GET /x"},
		wantErr: "--allow-http needs --http"},
	{name: "no allow entry", args: []string{"proxy", "server", "--listen", ":0", "--target", "127.0.0.1:1", "--deny", allowAll},
		wantErr: "no allow entry: this proxy would refuse every peer. Give --allow"},
	{name: "no allow entry, no subcommand", args: []string{"proxy", "--listen", ":0", "--target", "127.0.0.1:1"},
		wantErr: "or --allow-none to start admitting nobody"},
	{name: "allow-none with an allow entry", args: []string{"proxy", "--listen", ":0", "--target", "127.0.0.1:1", "--allow", allowAll, "--allow-none"},
		wantErr: "--allow-none contradicts the allow entries given"},
	{name: "verify-uri in server mode", args: []string{"proxy", "server", "--listen", ":0", "--target", "127.0.0.1:1", "--verify-uri", allowAll},
		wantErr: "--verify-uri names the server a client connects to"},
	{name: "use-workload-api=false", args: []string{"proxy", "--listen", ":0", "--target", "127.0.0.1:1", "--allow", allowAll, "--use-workload-api=false"},
		wantErr: "sworn proxy always takes its SVID and bundle from the Workload API"},
	{name: "client listening on every interface", args: []string{"proxy", "--client", "--listen", ":9000", "--target", "db:1", "--allow", allowAll},
		wantErr: `--listen ":9000" can be reached from other machines`},
	{name: "client subcommand listening on a LAN address", args: []string{"proxy", "client", "--listen", "10.1.2.3:9000", "--target", "db:1", "--verify-uri", allowAll},
		wantErr: "or give --unsafe-listen"},
	{name: "server targeting another host", args: []string{"proxy", "--listen", ":0", "--target", "db.internal:5432", "--allow", allowAll},
		wantErr: `--target "db.internal:5432" is not on this machine`},
	{name: "http mode targeting another host", args: []string{"proxy", "--http", "--listen", ":0", "--target", "10.0.0.7:80", "--allow", allowAll},
		wantErr: "or give --unsafe-target"},
	{name: "unsafe-listen in server mode", args: []string{"proxy", "server", "--listen", ":0", "--target", "127.0.0.1:1", "--allow", allowAll, "--unsafe-listen"},
		wantErr: "--unsafe-listen is for client mode"},
	{name: "unsafe-target in client mode", args: []string{"proxy", "client", "--listen", "127.0.0.1:0", "--target", "db:1", "--allow", allowAll, "--unsafe-target"},
		wantErr: "--unsafe-target is for server mode"},
	{name: "unknown log format", args: []string{"proxy", "--listen", ":0", "--target", "127.0.0.1:1", "--allow", allowAll, "--log-format", "yaml"},
		wantErr: `log format "yaml": want text or json`},
	{name: "socket mode not octal", args: []string{"proxy", "--listen", ":0", "--target", "127.0.0.1:1", "--allow", allowAll, "--socket-mode", "rw-rw----"},
		wantErr: `--socket-mode "rw-rw----": want an octal permission`},
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
			cmd.SetArgs(append(append([]string(nil), tt.args...), noAgent...))
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("sworn %s: %v, want an error containing %q", strings.Join(tt.args, " "), err, tt.wantErr)
			}
		})
	}
}

// TestProxyAcceptsGhostunnelSpellings: each flag set passes validation and
// gets as far as asking the Workload API for an SVID (there is no agent, so
// that is where it stops).
func TestProxyAcceptsGhostunnelSpellings(t *testing.T) {
	dir := t.TempDir()
	noAgent := "unix://" + filepath.Join(dir, "no-agent.sock")
	tests := []struct {
		name string
		args []string
	}{
		{name: "server, allow-uri-san, use-workload-api", args: []string{"proxy", "server", "--listen", ":0", "--target", "unix:" + filepath.Join(dir, "app.sock"),
			"--allow-uri-san", allowAll, "--use-workload-api", "--use-workload-api-addr", noAgent}},
		{name: "server, allow-uri, localhost target", args: []string{"proxy", "server", "--listen", "0.0.0.0:0", "--target", "localhost:8080",
			"--allow-uri", allowAll, "--use-workload-api-addr", noAgent}},
		{name: "client, verify-uri-san, unix listen", args: []string{"proxy", "client", "--listen", "unix:" + filepath.Join(dir, "c.sock"), "--target", "db.internal:8443",
			"--verify-uri-san", allowAll, "--use-workload-api-addr", noAgent}},
		{name: "--client, verify-uri, ::1", args: []string{"proxy", "--client", "--listen", "[::1]:0", "--target", "db.internal:8443",
			"--verify-uri", allowAll, "--workload-api", noAgent}},
		{name: "client, unsafe-listen", args: []string{"proxy", "client", "--listen", ":0", "--target", "db.internal:8443", "--unsafe-listen",
			"--allow", allowAll, "--workload-api", noAgent}},
		{name: "server, unsafe-target", args: []string{"proxy", "--listen", ":0", "--target", "10.0.0.7:80", "--unsafe-target",
			"--allow", allowAll, "--workload-api", noAgent}},
		{name: "allow-none", args: []string{"proxy", "--listen", ":0", "--target", "127.0.0.1:1", "--allow-none", "--workload-api", noAgent}},
		{name: "ghostunnel timeouts, status, json logs", args: []string{"proxy", "--listen", ":0", "--target", "127.0.0.1:1", "--allow", allowAll,
			"--connect-timeout", "3s", "--shutdown-timeout", "1m", "--status", "127.0.0.1:0", "--log-format", "json", "--workload-api", noAgent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := cli.NewCommand(context.Background())
			cmd.SetOut(&strings.Builder{})
			cmd.SetErr(&strings.Builder{})
			cmd.SetArgs(append(append([]string(nil), tt.args...), "--fetch-timeout", "100ms"))
			if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "no SVID from the Workload API at "+noAgent) {
				t.Fatalf("sworn %s: %v, want it to get as far as the Workload API", strings.Join(tt.args, " "), err)
			}
		})
	}
}
