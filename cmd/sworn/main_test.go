package main_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/internal/testutil"
)

// TestAgentProcessReloadsOnSIGHUPAndExitsCleanlyOnSIGTERM runs the real
// sworn binary: a rule added to the config file reaches an open X509Source
// after SIGHUP (and, later, with no signal at all), a malformed file is
// refused without losing the rules in force, and SIGTERM ends the process
// with status 0.
func TestAgentProcessReloadsOnSIGHUPAndExitsCleanlyOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the sworn binary")
	}
	dir, bin := buildSworn(t)
	socket := filepath.Join(dir, "w.sock")
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeConfig := func(rules string) {
		t.Helper()
		cfg := fmt.Sprintf("trust_domain: example.org\nsocket_path: %s\nadmin_socket_path: %s\ndata_dir: %s\nhealth_addr: 127.0.0.1:0\nrules:\n%s",
			socket, filepath.Join(dir, "a.sock"), filepath.Join(dir, "data"), rules)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("  - spiffe_id: spiffe://example.org/first\n    selectors: [any]\n")

	cmd, logs, exited := startLogged(t, bin, "agent", "--config", cfgPath)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr("unix://"+socket)))
	if err != nil {
		t.Fatalf("NewX509Source: %v", err)
	}
	defer src.Close()

	writeConfig("  - spiffe_id: spiffe://example.org/{unix:bogus}\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the refused reload in the log", func() bool { return strings.Contains(logs.String(), "reload refused") })

	writeConfig("  - spiffe_id: spiffe://example.org/second\n    selectors: [any]\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the reloaded identity in the open source", func() bool {
		svid, err := src.GetX509SVID()
		return err == nil && svid.ID.Path() == "/second"
	})

	// A ConfigMap update arrives as a changed file and no signal.
	writeConfig("  - spiffe_id: spiffe://example.org/third\n    selectors: [any]\n")
	testutil.Eventually(t, "the changed file to be picked up without a signal", func() bool {
		svid, err := src.GetX509SVID()
		return err == nil && svid.ID.Path() == "/third"
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("agent exited with %v after SIGTERM, want 0", err)
		}
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not exit after SIGTERM")
	}
}

// buildSworn builds the sworn binary into a short temporary directory,
// where the test's sockets go too.
func buildSworn(t *testing.T) (dir, bin string) {
	t.Helper()
	dir = testutil.ShortTempDir(t, "sworn-e2e")
	bin = filepath.Join(dir, "sworn")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir, bin
}

// startLogged starts bin with args, killed when the test ends. Its stderr
// goes to logs, which the test may read while it runs and which is printed
// if the test fails; exited receives what Wait returns.
func startLogged(t *testing.T, bin string, args ...string) (cmd *exec.Cmd, logs *testutil.Buffer, exited <-chan error) {
	t.Helper()
	logs = &testutil.Buffer{}
	cmd = exec.Command(bin, args...)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("%s logs:\n%s", filepath.Base(bin), logs.String())
		}
	})
	return cmd, logs, done
}
