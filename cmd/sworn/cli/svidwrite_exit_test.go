package cli_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// startBin runs the sworn binary with args; stdout and stderr go to out.
// It returns a channel with the process's exit status.
func startBin(t *testing.T, bin string, out *testutil.Buffer, args ...string) (*exec.Cmd, <-chan int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			done <- 0
		case errors.As(err, &ee):
			done <- ee.ExitCode()
		default:
			done <- -2
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, done
}

func exitStatus(t *testing.T, done <-chan int, out *testutil.Buffer) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("sworn did not exit\n%s", out.String())
		return 0
	}
}

// TestSVIDWatchAndWriteExitStatus runs the real binary against a real
// agent: SIGINT and SIGTERM stop `svid watch` and `svid write` (with or
// without --exec) with status 0, and `svid write --exec` exits with its
// command's status, 128+N when signal N killed it, as shells report it.
func TestSVIDWatchAndWriteExitStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the sworn binary")
	}
	bin := buildSworn(t, "")
	a := agenttest.Start(t, agenttest.Config(t))
	sock := a.Config.SocketPath

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		for _, tc := range []struct {
			name  string
			args  []string
			ready func(dir string, out *testutil.Buffer) bool
		}{
			{name: "watch", args: []string{"svid", "watch"},
				ready: func(_ string, out *testutil.Buffer) bool { return contains(out, "SPIFFE ID:") }},
			{name: "write", args: []string{"svid", "write"},
				ready: func(dir string, _ *testutil.Buffer) bool { return exists(filepath.Join(dir, "svid.pem")) }},
			{name: "write --exec", args: []string{"svid", "write", "--exec", "sh", "--", "-c", "touch \"$0\"; exec sleep 60"},
				ready: func(dir string, _ *testutil.Buffer) bool { return exists(filepath.Join(dir, "started")) }},
		} {
			t.Run(tc.name+" "+sig.String(), func(t *testing.T) {
				dir := t.TempDir()
				out := &testutil.Buffer{}
				args := append([]string{tc.args[0], tc.args[1], "--socket", sock, "--dir", dir}, tc.args[2:]...)
				switch tc.name {
				case "watch":
					args = append(tc.args, "--socket", sock)
				case "write --exec":
					args = append(args, filepath.Join(dir, "started")) // the script's $0
				}
				cmd, done := startBin(t, bin, out, args...)
				testutil.Eventually(t, "sworn to be running", func() bool { return tc.ready(dir, out) })
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				if code := exitStatus(t, done, out); code != 0 {
					t.Fatalf("sworn %v exited %d on %v; want 0\n%s", args, code, sig, out.String())
				}
			})
		}
	}

	for _, tc := range []struct {
		name   string
		script string
		want   int
	}{
		{name: "exit 0", script: "exit 0", want: 0},
		{name: "exit 3", script: "exit 3", want: 3},
		{name: "killed by SIGKILL", script: "kill -KILL $$", want: 128 + 9},
		{name: "killed by SIGTERM", script: "kill -TERM $$", want: 128 + 15},
	} {
		t.Run("exec "+tc.name, func(t *testing.T) {
			out := &testutil.Buffer{}
			_, done := startBin(t, bin, out, "svid", "write", "--socket", sock, "--dir", t.TempDir(), "--exec", "sh", "--", "-c", tc.script)
			if code := exitStatus(t, done, out); code != tc.want {
				t.Fatalf("sworn svid write --exec sh -c %q exited %d; want %d\n%s", tc.script, code, tc.want, out.String())
			}
		})
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func contains(b *testutil.Buffer, s string) bool {
	return strings.Contains(b.String(), s)
}
