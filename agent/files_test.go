package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sworn-id/sworn/agent"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/internal/testutil"
)

// warnings returns the messages the agent's JSON log holds at WARN or
// above.
func warnings(t *testing.T, logs *testutil.Buffer) []string {
	t.Helper()
	var out []string
	dec := json.NewDecoder(bytes.NewReader(logs.Bytes()))
	for {
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			return out
		}
		if rec["level"] == "WARN" || rec["level"] == "ERROR" {
			out = append(out, fmt.Sprint(rec))
		}
	}
}

// newLogged is a real slog JSON handler writing into a buffer that is safe
// to read while the agent logs.
func newLogged() (*slog.Logger, *testutil.Buffer) {
	b := &testutil.Buffer{}
	return slog.New(slog.NewJSONHandler(b, nil)), b
}

// runLogged runs an agent logging into a buffer until the test ends; the
// start-up logs are all written once Ready is closed.
func runLogged(t *testing.T, cfg *config.Config) *testutil.Buffer {
	t.Helper()
	log, logs := newLogged()
	a, err := agent.New(cfg, log)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent.Run: %v", err)
		}
	})
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("agent exited: %v", err)
	}
	return logs
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
}

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to " + why)
	}
}

// unsafeDataDirs are the ways others could write where the agent finds its
// CA; setup makes one in a data dir the agent has written, and returns the
// path the error must name and the fix it must suggest.
var unsafeDataDirs = []struct {
	name  string
	root  bool // needs root to chown to another uid
	setup func(t *testing.T, data string) (path, fix string)
}{
	{name: "data dir world-writable", setup: func(t *testing.T, data string) (string, string) {
		chmod(t, data, 0o777)
		return data, "chmod go-w " + data
	}},
	{name: "data dir sticky and world-writable", setup: func(t *testing.T, data string) (string, string) {
		chmod(t, data, os.ModeSticky|0o777)
		return data, "chmod go-w " + data
	}},
	{name: "CA directory group-writable", setup: func(t *testing.T, data string) (string, string) {
		p := filepath.Join(data, "ca")
		chmod(t, p, 0o770)
		return p, "chmod go-w " + p
	}},
	{name: "parent world-writable without sticky bit", setup: func(t *testing.T, data string) (string, string) {
		p := filepath.Dir(data)
		chmod(t, p, 0o777)
		return p, "chmod go-w " + p
	}},
	{name: "state.json group-writable", setup: func(t *testing.T, data string) (string, string) {
		p := filepath.Join(data, "ca", "state.json")
		chmod(t, p, 0o620)
		return p, "chmod go-w " + p
	}},
	{name: "bundle.pem world-writable", setup: func(t *testing.T, data string) (string, string) {
		p := filepath.Join(data, "bundle.pem")
		chmod(t, p, 0o666)
		return p, "chmod go-w " + p
	}},
	{name: "persisted SVID world-writable", setup: func(t *testing.T, data string) (string, string) {
		p := filepath.Join(data, "svids", "0123.pem")
		writeFile(t, p, 0o666)
		return p, "chmod go-w " + p
	}},
	{name: "federated bundle group-writable", setup: func(t *testing.T, data string) (string, string) {
		p := filepath.Join(data, "federation", "other.org.bundle")
		writeFile(t, p, 0o664)
		return p, "chmod go-w " + p
	}},
	{name: "data dir a symlink into a world-writable directory", setup: symlinkIntoWorldWritable},
	{name: "CA planted by another uid", root: true, setup: plantForeignCA},
	{name: "data dir owned by another uid", root: true, setup: func(t *testing.T, data string) (string, string) {
		if err := os.Chown(data, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		return data, fmt.Sprintf("chown %d %s", os.Geteuid(), data)
	}},
	{name: "parent owned by another uid", root: true, setup: func(t *testing.T, data string) (string, string) {
		p := filepath.Dir(data)
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		return p, "chown root " + p
	}},
}

// symlinkIntoWorldWritable moves the data dir away and puts in its place a
// symlink to a directory inside a world-writable one.
func symlinkIntoWorldWritable(t *testing.T, data string) (path, fix string) {
	t.Helper()
	open := filepath.Join(filepath.Dir(data), "open")
	if err := os.Rename(data, filepath.Join(filepath.Dir(data), "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	chmod(t, open, 0o777)
	if err := os.Symlink(filepath.Join(open, "data"), data); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(open, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	return open, "chmod go-w " + open
}

// plantForeignCA leaves what an attacker would: their own CA, owned by
// another uid, adopted as active.
func plantForeignCA(t *testing.T, data string) (path, fix string) {
	t.Helper()
	theirs := filepath.Join(t.TempDir(), "ca")
	if _, err := local.New(local.Config{TrustDomain: td, Dir: theirs}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(theirs, "*"))
	var planted string
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(data, "ca", filepath.Base(f))
		if err := os.WriteFile(dst, body, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dst, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(filepath.Base(f), "ca-") {
			planted = dst
		}
	}
	return planted, fmt.Sprintf("chown %d %s", os.Geteuid(), planted)
}

// The data dir is where the agent finds its CA: whoever can write there, or
// above it, can make the agent sign with their CA. The agent refuses to
// start then, naming the path and the fix.
func TestAgentRefusesDataDirOthersCouldWrite(t *testing.T) {
	for _, tt := range unsafeDataDirs {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				needRoot(t, "chown a file to another uid")
			}
			cfg := newConfig(t)
			first, err := agent.New(cfg, nil) // writes the CA, state.json and bundle.pem
			if err != nil {
				t.Fatalf("first start: %v", err)
			}
			first.Close() // releases the data dir lock
			path, fix := tt.setup(t, cfg.DataDir)
			_, err = agent.New(cfg, nil)
			if err == nil {
				t.Fatalf("agent started although %s", tt.name)
			}
			if !strings.Contains(err.Error(), path+" ") || !strings.Contains(err.Error(), fix) {
				t.Fatalf("error %q names neither %s nor the fix %q", err, path, fix)
			}
		})
	}
}

// The checks must not refuse what is safe: a world-writable parent with
// the sticky bit (like /tmp), where nobody else can rename or remove the
// data dir.
func TestAgentAcceptsStickyWorldWritableParent(t *testing.T) {
	cfg := newConfig(t)
	first, err := agent.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	first.Close() // releases the data dir lock
	chmod(t, filepath.Dir(cfg.DataDir), os.ModeSticky|0o777)
	if _, err := agent.New(cfg, nil); err != nil {
		t.Fatalf("agent refused a safe data dir: %v", err)
	}
}

// A socket directory the agent creates (even as a parent of data_dir) is
// 0755, so that other users' workloads can reach the socket; when an
// ancestor still shuts them out the agent says so.
func TestSocketDirectoryIsReachableByOtherUsers(t *testing.T) {
	cfg := newConfig(t)
	base := filepath.Dir(cfg.SocketPath) // 0700, made by os.MkdirTemp
	cfg.SocketPath = filepath.Join(base, "run", "sworn", "workload.sock")
	cfg.DataDir = filepath.Join(base, "run", "sworn", "data")
	old := syscall.Umask(0o077) // an operator's strict umask must not narrow it either
	defer syscall.Umask(old)

	logs := runLogged(t, cfg)
	for _, dir := range []string{filepath.Join(base, "run"), filepath.Join(base, "run", "sworn")} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("socket directory %s has mode %v, want 0755", dir, fi.Mode().Perm())
		}
	}
	fi, err := os.Stat(cfg.DataDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v, %v; want mode 0700", fi, err)
	}
	var found bool
	for _, w := range warnings(t, logs) {
		found = found || strings.Contains(w, base) && strings.Contains(w, "chmod o+x "+base)
	}
	if !found {
		t.Fatalf("no warning that %s (0700) keeps other users from the socket; warnings: %q", base, warnings(t, logs))
	}
}

// A socket kept private on purpose (a non-root --dev agent's 0700
// directory) draws no advice to open it: --dev refuses a directory others
// can enter.
func TestPrivateSocketDirectoryIsNotWarnedAbout(t *testing.T) {
	cfg := newConfig(t) // its socket's directory is 0700, made by os.MkdirTemp
	cfg.SocketPrivate = true
	logs := runLogged(t, cfg)
	for _, w := range warnings(t, logs) {
		if strings.Contains(w, "not reachable") {
			t.Fatalf("warning about a socket private on purpose: %q", w)
		}
	}
}

func TestSocketReachedByAnotherUIDWhenAgentCreatedItsDirectory(t *testing.T) {
	needRoot(t, "connect from a child process under another uid")
	cfg := newConfig(t, config.Rule{SPIFFEID: "spiffe://example.org/root-only", Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Geteuid())}})
	base := filepath.Dir(cfg.SocketPath)
	chmod(t, base, 0o755)
	cfg.SocketPath = filepath.Join(base, "run", "sworn", "workload.sock")
	cfg.DataDir = filepath.Join(base, "run", "sworn", "data")
	logs := runLogged(t, cfg)
	for _, w := range warnings(t, logs) {
		if strings.Contains(w, "not reachable") {
			t.Errorf("warning although every directory is reachable: %q", w)
		}
	}

	out := childFetch(t, base, "unix://"+cfg.SocketPath, 65534)
	// PermissionDenied comes from the agent (no rule for uid 65534): the
	// connection got through; a directory in the way gives Unavailable.
	if !strings.Contains(out, "code: PermissionDenied") {
		t.Fatalf("child under uid 65534 got %q, want to reach the agent (PermissionDenied)", out)
	}
}
