package cli_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/cmd/sworn/cli"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestSVIDWriteTakesASpiffeHelperConfigAsIs: a helper.conf written for
// spiffe-helper (its names, modes, jwt_svids, jwt_bundle_file_name,
// daemon_mode = false) gives the files spiffe-helper would write.
func TestSVIDWriteTakesASpiffeHelperConfigAsIs(t *testing.T) {
	a := agenttest.Start(t, agenttest.Config(t))
	dir := filepath.Join(t.TempDir(), "certs")
	conf := filepath.Join(t.TempDir(), "helper.conf")
	body := fmt.Sprintf(`agent_address = %q
cert_dir = %q
svid_file_name = "tls.crt"
svid_key_file_name = "tls.key"
svid_bundle_file_name = "ca.pem"
jwt_bundle_file_name = "cert.jwt"
jwt_svids = [{jwt_audience="test", jwt_svid_file_name="jwt_svid.token"}]
daemon_mode = false
key_file_mode = 0400
cert_file_mode = 0444
`, a.Config.SocketPath, dir)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	clitest.Run(t, "svid", "write", "--config", conf)

	for name, want := range map[string]os.FileMode{"tls.key": 0o400, "tls.crt": 0o444, "ca.pem": 0o444, "jwt_svid.token": 0o600, "cert.jwt": 0o600} {
		if got := perm(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s has mode %v, want %v", name, got, want)
		}
	}
	out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "ca.pem"), filepath.Join(dir, "tls.crt")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	// The JWT bundle file is spiffe-helper's: trust domain → base64 JWKS,
	// and its keys verify the JWT-SVID written beside it.
	raw, err := os.ReadFile(filepath.Join(dir, "cert.jwt"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("cert.jwt: %v\n%s", err, raw)
	}
	jwks, err := base64.StdEncoding.DecodeString(m["example.org"])
	if err != nil {
		t.Fatal(err)
	}
	b, err := jwtbundle.Parse(spiffeid.RequireTrustDomainFromString("example.org"), jwks)
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(dir, "jwt_svid.token"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwtsvid.ParseAndValidate(string(token), b, []string{"test"}); err != nil {
		t.Fatalf("jwt_svid.token does not verify with cert.jwt's keys: %v", err)
	}
}

func TestSVIDWriteRefusesUnsafeModesAndDirectories(t *testing.T) {
	a := agenttest.Start(t, agenttest.Config(t))
	sock := a.Config.SocketPath
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	confDir := t.TempDir()
	unknown := filepath.Join(confDir, "helper.conf")
	if err := os.WriteFile(unknown, []byte("svid_file_name = \"a\"\nsvid_key_file_name = \"b\"\nsvid_bundle_file_name = \"c\"\nrenew_sigal = \"SIGHUP\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "group-readable key", args: []string{"--dir", t.TempDir(), "--key-file-mode", "0640"}, want: "key file mode 0640 lets group or others read a credential"},
		{name: "world-readable JWT-SVID", args: []string{"--dir", t.TempDir(), "--jwt-svid", "a=a.jwt", "--jwt-svid-file-mode", "0644"}, want: "JWT-SVID file mode 0644"},
		{name: "world-writable directory", args: []string{"--dir", open}, want: "is writable by group or others (mode 0777)"},
		{name: "unknown key in helper.conf", args: []string{"--config", unknown}, want: unknown + `:4: unknown key "renew_sigal"`},
		{name: "not a mode", args: []string{"--dir", t.TempDir(), "--cert-file-mode", "644x"}, want: `--cert-file-mode: "644x" is not an octal permission mode`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"svid", "write", "--once", "--socket", sock}, tc.args...)
			if err := clitest.Fail(t, args...); !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q; want it to say %q", err, tc.want)
			}
		})
	}
	dir := t.TempDir()
	clitest.Run(t, "svid", "write", "--once", "--socket", sock, "--dir", dir, "--key-file-mode", "0640", "--unsafe-key-mode")
	if got := perm(t, filepath.Join(dir, "svid_key.pem")); got != 0o640 {
		t.Fatalf("with --unsafe-key-mode the key has mode %v, want 0640", got)
	}
}

// TestSVIDWritePIDFileIsSignalledOnRotationsOnly: the process in
// --pid-file starts with the first files, so only later rotations signal it.
func TestSVIDWritePIDFileIsSignalledOnRotationsOnly(t *testing.T) {
	a := agenttest.Start(t, agenttest.Config(t))
	dir := t.TempDir()
	pidFile, seen := filepath.Join(dir, "app.pid"), filepath.Join(dir, "seen")
	app := exec.Command("sh", "-c", `echo $$ > app.pid.tmp && mv app.pid.tmp app.pid
trap 'openssl x509 -in svid.pem -noout -serial >> seen' HUP
while :; do sleep 0.05; done`)
	app.Dir = dir
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Process.Kill(); _ = app.Wait() })
	testutil.Eventually(t, "the app's pid file", func() bool { return exists(pidFile) })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := cli.NewCommand(ctx)
	out := &testutil.Buffer{}
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs([]string{"svid", "write", "--dir", dir, "--socket", a.Config.SocketPath, "--signal", "SIGHUP", "--pid-file", pidFile})
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()

	wrote := func() int { return strings.Count(out.String(), "wrote spiffe://") }
	testutil.Eventually(t, "the first write", func() bool { return wrote() == 1 })
	clitest.Run(t, "rotate", "svids", "--all", "--admin-socket", a.Config.AdminSocketPath)
	testutil.Eventually(t, "the rotation's write", func() bool { return wrote() >= 2 })
	testutil.Eventually(t, "the app to be signalled", func() bool { return exists(seen) })
	// Each signal is logged before it is sent and the second write is
	// logged after the first write's signal would have been: one line.
	if n := strings.Count(out.String(), "signalling"); n != 1 {
		t.Fatalf("the pid file was signalled %d times for one rotation; want 1\n%s", n, out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("svid write: %v", err)
	}
}

// TestSVIDWriteHealthEndpoints: /live answers while the process is up;
// /ready only once the files are written.
func TestSVIDWriteHealthEndpoints(t *testing.T) {
	cfg := agenttest.Config(t)
	addr := testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := cli.NewCommand(ctx)
	out := &testutil.Buffer{}
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs([]string{"svid", "write", "--dir", t.TempDir(), "--socket", cfg.SocketPath, "--health-addr", addr})
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()

	get := func(path string) int {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testutil.Eventually(t, "/live to answer", func() bool { return get("/live") == http.StatusOK })
	if code := get("/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("/ready before any agent: %d, want 503", code)
	}
	agenttest.Start(t, cfg)
	testutil.EventuallyWithin(t, time.Minute, "/ready once the files are written", func() bool { return get("/ready") == http.StatusOK })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("svid write: %v", err)
	}
}
