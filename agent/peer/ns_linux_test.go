package peer_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
)

// TestBindMountInUserNamespaceDoesNotGrantPath plays the mount namespace
// attack on a real agent: an unprivileged user (uid 65534) runs
// `unshare -Urm`, bind-mounts its own binary over a path a rule names, and
// execs that path. It must not get unix:path of that path, since the file
// the agent sees there is another; its digest is still that of what it
// really runs. A process in the agent's own mount namespace running the
// named file still gets unix:path.
func TestBindMountInUserNamespaceDoesNotGrantPath(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the attacker as uid 65534")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare(1) from util-linux to build the attacker's namespaces")
	}
	_, bins, sums := binaries(t, "evil", "victim")
	cfg := agenttest.Config(t,
		config.Rule{SPIFFEID: "spiffe://example.org/victim-by-path", Selectors: []string{"unix:path:" + bins["victim"]}},
		config.Rule{SPIFFEID: "spiffe://example.org/victim-by-sha256", Selectors: []string{"unix:sha256:" + sums["victim"]}},
		config.Rule{SPIFFEID: "spiffe://example.org/evil-by-sha256", Selectors: []string{"unix:sha256:" + sums["evil"]}},
	)
	if err := os.Chmod(filepath.Dir(cfg.SocketPath), 0o755); err != nil {
		t.Fatal(err)
	}
	ta := agenttest.Start(t, cfg)
	env := append(os.Environ(), "SWORN_TEST_ADDR="+ta.Addr(), "SWORN_TEST_VICTIM="+bins["victim"])
	// Each child runs as nobody in a process group of its own, killed with
	// its group when the test's deadline passes or the test binary dies,
	// so no child (in a user namespace the test cannot signal by name)
	// outlives the test.
	command := func(name string, args ...string) *exec.Cmd {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}, Setpgid: true, Pdeathsig: syscall.SIGKILL}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		return cmd
	}

	t.Run("bind mount in a user and mount namespace", func(t *testing.T) {
		cmd := command(unshare, "-Urm", bins["evil"], "-test.run=^$")
		cmd.Env = append(env, roleEnv+"=nsmount")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			if strings.Contains(stderr.String(), "unshare failed") || strings.Contains(stderr.String(), "Operation not permitted") {
				t.Skipf("uid 65534 may not create a user namespace here: %s", stderr.String())
			}
			t.Fatalf("attacker: %v\n%s", err, stderr.String())
		}
		got := strings.TrimSpace(string(out))
		if strings.Contains(got, "victim") {
			t.Fatalf("a bind mount over %s in the caller's own namespace earned its identity: %s", bins["victim"], got)
		}
		if got != "ids: spiffe://example.org/evil-by-sha256" {
			t.Fatalf("attacker got %q, want only the identity of the digest it really runs", got)
		}
	})

	t.Run("the named file in the agent's namespace", func(t *testing.T) {
		cmd := command(bins["victim"], "-test.run=^$")
		cmd.Env = append(env, roleEnv+"=fetch")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("victim: %v\n%s", err, out)
		}
		if got, want := strings.TrimSpace(string(out)), "ids: spiffe://example.org/victim-by-path,spiffe://example.org/victim-by-sha256"; got != want {
			t.Fatalf("the named binary got %q, want %q", got, want)
		}
	})
}
