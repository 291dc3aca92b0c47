package cache_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/sworn-id/sworn/internal/testutil"
)

// An SVID file is staged in its own directory under the name renameio
// gives its temp files (".<name><digits>"), which the agent's start
// removes if a crash leaves one, then renamed into place; the file is
// 0600 and nothing else is left behind. (It is not fsynced: an SVID can be
// re-issued, and Restore drops a file a power loss damaged.)
func TestSVIDFileIsStagedBesideItAndRenamed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "svids")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	signer := anchoringSigner{newSigner(t)}
	created := testutil.CreatedIn(t, dir, func() { persistOne(t, signer, dir) })
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("files in %s: %v, %v; want the one SVID file", dir, files, err)
	}
	final := filepath.Base(files[0])
	temp := regexp.MustCompile(`^\.` + regexp.QuoteMeta(final) + `[0-9]+$`)
	if len(created) != 2 || !temp.MatchString(created[0]) || created[1] != final {
		t.Fatalf("created %q, want a temp file named like %s then %s by rename", created, temp, final)
	}
	fi, err := os.Stat(files[0])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	if hidden, _ := filepath.Glob(filepath.Join(dir, ".*")); len(hidden) != 0 {
		t.Fatalf("left behind: %v", hidden)
	}
}
