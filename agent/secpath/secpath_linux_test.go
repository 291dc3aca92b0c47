package secpath_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sworn-id/sworn/agent/secpath"
	"github.com/sworn-id/sworn/internal/testutil"
)

// base returns a directory with a safe path above it.
func base(t *testing.T) string {
	t.Helper()
	dir := testutil.ShortTempDir(t, "secpath")
	return dir
}

func TestCheckTree(t *testing.T) {
	uid := os.Geteuid()
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) (root string)
		wantErr string // "" means accepted
	}{
		{name: "root not created yet", setup: func(t *testing.T, dir string) string {
			return filepath.Join(dir, "a", "b")
		}},
		{name: "symlink loop inside", setup: func(t *testing.T, dir string) string {
			root := filepath.Join(dir, "data")
			must(t, os.Mkdir(root, 0o700))
			must(t, os.Symlink(root, filepath.Join(root, "loop")))
			return root
		}},
		{name: "file link to a world-writable file", setup: func(t *testing.T, dir string) string {
			root := filepath.Join(dir, "data")
			must(t, os.Mkdir(root, 0o700))
			target := filepath.Join(dir, "open.pem")
			must(t, os.WriteFile(target, nil, 0o600))
			must(t, os.Chmod(target, 0o666))
			must(t, os.Symlink(target, filepath.Join(root, "state.json")))
			return root
		}, wantErr: "open.pem has mode -rw-rw-rw-"},
		{name: "dangling link inside", setup: func(t *testing.T, dir string) string {
			root := filepath.Join(dir, "data")
			must(t, os.Mkdir(root, 0o700))
			must(t, os.Symlink(filepath.Join(dir, "not-yet.pem"), filepath.Join(root, "bundle.pem")))
			return root
		}, wantErr: "bundle.pem is a symbolic link to nothing"},
		{name: "sticky world-writable directory above", setup: func(t *testing.T, dir string) string {
			must(t, os.Chmod(dir, os.ModeSticky|0o777))
			return filepath.Join(dir, "data")
		}},
		{name: "world-writable directory above, no sticky bit", setup: func(t *testing.T, dir string) string {
			must(t, os.Chmod(dir, 0o777))
			return filepath.Join(dir, "data")
		}, wantErr: "chmod go-w " + "DIR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := base(t)
			root := tt.setup(t, dir)
			err := secpath.CheckTree(root, uid)
			want := strings.ReplaceAll(tt.wantErr, "DIR", dir)
			switch {
			case want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
				t.Fatalf("err = %v, want one containing %q", err, want)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	dir := base(t) // 0700
	sock := filepath.Join(dir, "run", "workload.sock")
	must(t, os.Mkdir(filepath.Join(dir, "run"), 0o755))
	if got := secpath.Unreachable(sock); got != dir {
		t.Fatalf("Unreachable = %q, want %s (mode 0700)", got, dir)
	}
	must(t, os.Chmod(dir, 0o711))
	if got := secpath.Unreachable(sock); got != "" {
		t.Fatalf("Unreachable = %q with every directory o+x", got)
	}
}

func TestMkdirAllIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := base(t)
	path := filepath.Join(dir, "a", "b")
	must(t, secpath.MkdirAll(path, 0o755))
	for _, p := range []string{filepath.Join(dir, "a"), path} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("%s: %v, %v; want mode 0755", p, fi.Mode(), err)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("MkdirAll changed the mode of an existing directory to %v", fi.Mode().Perm())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
