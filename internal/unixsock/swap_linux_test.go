package unixsock

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sworn-id/sworn/internal/testutil"
)

// Between bind and chmod, whoever can write the socket's directory can
// put a link to any file at the path. Listen (often run as root) must not
// then change that file's mode or owner.
func TestListenDoesNotChmodOrChownThroughALinkSwappedInAfterBind(t *testing.T) {
	dir := testutil.ShortTempDir(t, "us")
	path := filepath.Join(dir, "s.sock")
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	afterBind = func(p string) {
		if err := os.Remove(p); err != nil {
			t.Error(err)
		}
		if err := os.Symlink(victim, p); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { afterBind = func(string) {} })
	var owner *uint32
	if os.Geteuid() == 0 {
		owner = new(uint32)
		*owner = 4242
	}
	l, err := Listen(path, 0o666, owner)
	if err == nil {
		l.Close()
		t.Error("Listen succeeded on a path swapped for a link after bind")
	}
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the link's target became %v, want it left 0600", fi.Mode().Perm())
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
		t.Errorf("the link's target now belongs to uid %d", uid)
	}
}
