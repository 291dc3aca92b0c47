package atomicfile_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/sworn-id/sworn/internal/atomicfile"
)

func TestWriteGivesExactlyTheModeAskedAndLeavesNothingBehind(t *testing.T) {
	tests := []struct {
		name string
		old  fs.FileMode // 0: no file there yet
		mode fs.FileMode
	}{
		{name: "new key", mode: 0o600},
		{name: "a key file someone left 0644", old: 0o644, mode: 0o600},
		{name: "a bundle replacing a 0600 file", old: 0o600, mode: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f.pem")
			if tt.old != 0 {
				if err := os.WriteFile(path, []byte("old"), tt.old); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.old); err != nil {
					t.Fatal(err)
				}
			}
			if err := atomicfile.Write(path, []byte("new"), tt.mode); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.mode {
				t.Fatalf("mode %v, want %v", fi.Mode().Perm(), tt.mode)
			}
			if data, _ := os.ReadFile(path); string(data) != "new" {
				t.Fatalf("content %q", data)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("left behind: %v", entries)
			}
		})
	}
}

func TestWriteFailsWithoutTouchingTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "f.pem")
	if err := atomicfile.Write(path, []byte("x"), 0o600); err == nil {
		t.Fatal("wrote into a directory that does not exist")
	}
}
