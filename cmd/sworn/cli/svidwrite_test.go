package cli_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/cmd/sworn/cli"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

func TestSVIDWriteOnceGivesFilesOpenSSLVerifies(t *testing.T) {
	a := agenttest.Start(t, agenttest.Config(t))
	dir := t.TempDir()
	clitest.Run(t, "svid", "write", "--once", "--dir", dir, "--socket", a.Config.SocketPath)

	fi, err := os.Stat(filepath.Join(dir, "svid_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("svid_key.pem has mode %v, want 0600", fi.Mode().Perm())
	}
	out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "bundle.pem"), filepath.Join(dir, "svid.pem")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
}

func TestSVIDWriteSignalsTheProcessOnRotation(t *testing.T) {
	a := agenttest.Start(t, agenttest.Config(t))
	dir := t.TempDir()
	seen := filepath.Join(dir, "seen")
	// The child prints the serial of svid.pem every time it gets SIGHUP, as
	// a server reloading its certificate would.
	script := `trap 'openssl x509 -in svid.pem -noout -serial >> seen' HUP
openssl x509 -in svid.pem -noout -serial >> seen
while :; do sleep 0.05; done`

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := cli.NewCommand(ctx)
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"svid", "write", "--dir", dir, "--socket", a.Config.SocketPath, "--signal", "SIGHUP", "--exec", "sh", "--", "-c", "cd " + dir + " && " + script})
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()

	serials := func() []string {
		data, _ := os.ReadFile(seen)
		return strings.Fields(string(data))
	}
	testutil.Eventually(t, "the child to start and read the first SVID", func() bool { return len(serials()) == 1 })
	clitest.Run(t, "rotate", "svids", "--all", "--admin-socket", a.Config.AdminSocketPath)
	testutil.Eventually(t, "the signalled child to see the new SVID", func() bool {
		s := serials()
		return len(s) >= 2 && s[len(s)-1] != s[0]
	})
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("svid write did not stop")
	}
}
