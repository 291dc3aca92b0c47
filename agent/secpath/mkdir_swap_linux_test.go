package secpath

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sworn-id/sworn/internal/testutil"
)

// Between mkdir and chmod, whoever can write the parent may put a link
// at the new directory's path. MkdirAll (run as root for the socket and
// data directories) must not then chmod the link's target.
func TestMkdirAllDoesNotChmodThroughALinkSwappedInAfterMkdir(t *testing.T) {
	dir := testutil.ShortTempDir(t, "sp")
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	afterMkdir = func(p string) {
		if err := os.Remove(p); err != nil {
			t.Error(err)
		}
		if err := os.Symlink(victim, p); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { afterMkdir = func(string) {} })
	if err := MkdirAll(filepath.Join(dir, "new"), 0o755); err == nil {
		t.Error("MkdirAll succeeded on a directory swapped for a link")
	}
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the link's target became %v, want it left 0600", fi.Mode().Perm())
	}
}
