package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sworn-id/sworn/internal/testutil"
)

const devHelperEnv = "SWORN_TEST_DEV_HELPER"

// TestDevHelperProcess is not a test: TestDevDirectory runs it in a child
// under another uid, where it prints what `sworn agent --dev` would use.
func TestDevHelperProcess(t *testing.T) {
	if os.Getenv(devHelperEnv) == "" {
		t.Skip("helper process of TestDevDirectory; runs only as its child")
	}
	fmt.Println(devLoad())
}

// devLoad loads the --dev configuration as `sworn agent --dev` does and
// says where it put its sockets, or why it refused.
func devLoad() string {
	cfg, err := (&agentOptions{dev: true}).load()
	if err != nil {
		return "error: " + err.Error()
	}
	if filepath.Dir(cfg.SocketPath) != filepath.Dir(cfg.AdminSocketPath) || filepath.Dir(cfg.DataDir) != filepath.Dir(cfg.SocketPath) {
		return "error: sockets and data are not in one directory: " + cfg.SocketPath + " " + cfg.DataDir
	}
	return "dir: " + filepath.Dir(cfg.SocketPath)
}

// devDirCases are where `sworn agent --dev` may put its directory and what
// may already be there; uid is the one the agent runs as.
var devDirCases = []struct {
	name     string
	root     bool // needs root: makes a file owned by another uid
	xdg      func(t *testing.T, tmp string, uid int) string
	pre      func(t *testing.T, path string, uid int) // what exists at $TMPDIR/sworn-<uid> before
	wantDir  func(tmp, xdg string, uid int) string
	wantErrs []string
}{
	{
		name:    "XDG_RUNTIME_DIR preferred",
		xdg:     func(t *testing.T, tmp string, uid int) string { return ownDir(t, filepath.Join(tmp, "run-user"), uid) },
		wantDir: func(_, xdg string, _ int) string { return filepath.Join(xdg, "sworn") },
	},
	{
		name:    "relative XDG_RUNTIME_DIR ignored",
		xdg:     func(*testing.T, string, int) string { return "run/user" },
		wantDir: func(tmp, _ string, uid int) string { return filepath.Join(tmp, fmt.Sprintf("sworn-%d", uid)) },
	},
	{
		name:    "created in TMPDIR when XDG_RUNTIME_DIR is unset",
		wantDir: func(tmp, _ string, uid int) string { return filepath.Join(tmp, fmt.Sprintf("sworn-%d", uid)) },
	},
	{
		name: "made first by another uid",
		root: true,
		pre: func(t *testing.T, path string, _ int) {
			mkdir(t, path, 0o777)
			chown(t, path, 12345)
		},
		wantErrs: []string{"is owned by uid 12345, not 65534", "pose as the agent"},
	},
	{
		name: "own but others may write",
		pre: func(t *testing.T, path string, uid int) {
			mkdir(t, path, 0o755)
			chown(t, path, uid)
		},
		wantErrs: []string{"has mode -rwxr-xr-x", "chmod 700"},
	},
	{
		name: "a symlink",
		pre: func(t *testing.T, path string, uid int) {
			target := ownDir(t, path+"-target", uid)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		},
		wantErrs: []string{"not a directory"},
	},
}

// A non-root --dev agent's sockets live in a directory only its uid
// controls; one that another user made first, or that others can write,
// is refused (else they could replace the socket and pose as the agent).
func TestDevDirectory(t *testing.T) {
	uid := os.Geteuid()
	if uid == 0 {
		uid = 65534 // root runs each case in a child under this uid (runDev)
	}
	for _, tt := range devDirCases {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root to make a directory owned by another uid")
			}
			tmp := worldDir(t)
			xdg := ""
			if tt.xdg != nil {
				xdg = tt.xdg(t, tmp, uid)
			}
			path := filepath.Join(tmp, fmt.Sprintf("sworn-%d", uid))
			if tt.pre != nil {
				tt.pre(t, path, uid)
			}
			got := runDev(t, tmp, xdg)
			if tt.wantErrs != nil {
				for _, want := range append([]string{"error: --dev", path}, tt.wantErrs...) {
					if !strings.Contains(got, want) {
						t.Fatalf("got %q, want a refusal containing %q", got, want)
					}
				}
				return
			}
			requireDevDir(t, got, tt.wantDir(tmp, xdg, uid), uid)
		})
	}
}

// requireDevDir checks that devLoad chose want, and that want is a 0700
// directory owned by uid.
func requireDevDir(t *testing.T, got, want string, uid int) {
	t.Helper()
	if got != "dir: "+want {
		t.Fatalf("got %q, want dir: %s", got, want)
	}
	fi, err := os.Stat(want)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 || fileOwner(fi) != uid {
		t.Fatalf("%s: mode %v owner %d, want 0700 owned by %d", want, fi.Mode().Perm(), fileOwner(fi), uid)
	}
}

// runDev runs devLoad with TMPDIR=tmp and XDG_RUNTIME_DIR=xdg: in a child
// under uid 65534 when we are root, in this process otherwise.
func runDev(t *testing.T, tmp, xdg string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Setenv("TMPDIR", tmp)
		t.Setenv("XDG_RUNTIME_DIR", xdg)
		return devLoad()
	}
	// The child runs this test binary, copied where uid 65534 can run it.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(tmp), "cli.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestDevHelperProcess$")
	cmd.Env = append(os.Environ(), devHelperEnv+"=1", "TMPDIR="+tmp, "XDG_RUNTIME_DIR="+xdg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return line
}

// worldDir returns a directory like /tmp: sticky and writable by all, in a
// parent everyone can traverse.
func worldDir(t *testing.T) string {
	t.Helper()
	parent := testutil.ShortTempDir(t, "sworn-dev")
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "tmp")
	mkdir(t, dir, os.ModeSticky|0o777)
	return dir
}

func ownDir(t *testing.T, path string, uid int) string {
	t.Helper()
	mkdir(t, path, 0o700)
	chown(t, path, uid)
	return path
}

func mkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if uid == os.Geteuid() {
		return
	}
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func fileOwner(fi os.FileInfo) int { return int(fi.Sys().(*syscall.Stat_t).Uid) }
