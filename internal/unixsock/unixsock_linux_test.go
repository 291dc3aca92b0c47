package unixsock_test

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/internal/unixsock"
)

// staleSocket leaves a socket at path that nobody serves, as a process
// killed with -9 does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

func TestListenReplacesOnlyAStaleSocket(t *testing.T) {
	tests := []struct {
		name    string
		plant   func(t *testing.T, path string)
		wantErr string // empty: Listen must succeed
	}{
		{name: "nothing there", plant: func(*testing.T, string) {}},
		{name: "a stale socket", plant: staleSocket},
		{name: "a regular file", wantErr: "is not a socket", plant: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a directory", wantErr: "is not a socket", plant: func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a link to a stale socket", wantErr: "is not a socket", plant: func(t *testing.T, path string) {
			staleSocket(t, path+".real")
			if err := os.Symlink(path+".real", path); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a socket someone serves", wantErr: "another process is serving", plant: func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(testutil.ShortTempDir(t, "us"), "s.sock")
			tt.plant(t, path)
			before, _ := os.Lstat(path)
			l, err := unixsock.Listen(path, 0o666, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Listen: %v, want an error containing %q", err, tt.wantErr)
				}
				if after, _ := os.Lstat(path); !os.SameFile(before, after) {
					t.Fatalf("what was at %s was replaced", path)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("the new socket does not answer: %v", err)
			}
			c.Close()
		})
	}
}

func TestListenSetsTheModeWhateverTheUmaskAndLeavesTheSocketOnClose(t *testing.T) {
	dir := filepath.Join(testutil.ShortTempDir(t, "us"), "sub")
	path := filepath.Join(dir, "s.sock")
	l, err := unixsock.Listen(path, 0o660, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want socket 0660", fi.Mode())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o755 {
		t.Fatalf("directory mode %v, want 0755", di.Mode().Perm())
	}
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("Close unlinked the socket: %v", err)
	}
}

func TestListenChownsToTheOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another uid needs root")
	}
	path := filepath.Join(testutil.ShortTempDir(t, "us"), "s.sock")
	owner := uint32(4242)
	l, err := unixsock.Listen(path, 0o600, &owner)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 4242 {
		t.Fatalf("socket owned by %d, want 4242", uid)
	}
}
