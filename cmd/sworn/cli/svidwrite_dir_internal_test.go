package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/internal/testutil"
)

// A directory another user owns is theirs to change whatever its mode:
// they could swap svid_bundle.pem for their own CA after we write it (a
// cert_dir squatted in /tmp), so svid write must refuse it.
func TestPrepareDirRefusesADirectoryAnotherUserOwns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a directory to another uid needs root")
	}
	base := testutil.ShortTempDir(t, "pd")
	theirs := filepath.Join(base, "theirs")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	err := prepareDir(theirs)
	if err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
		t.Fatalf("prepareDir(dir of uid 4242) = %v, want a refusal naming the owner", err)
	}
	if err := prepareDir(filepath.Join(base, "ours")); err != nil {
		t.Fatalf("prepareDir(a directory it creates) = %v", err)
	}
}
