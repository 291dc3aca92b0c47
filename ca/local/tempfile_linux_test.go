package local_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/internal/testutil"
)

// The CA key is never staged outside the CA's directory, not even for a
// moment: renameio would otherwise put its temp file in $TMPDIR when that
// is on the same file system, where a crash would leave a CA key behind.
func TestCAKeyIsNeverStagedInTMPDIR(t *testing.T) {
	base := t.TempDir() // one file system for TMPDIR and the CA
	tmp := filepath.Join(base, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	created := testutil.CreatedIn(t, tmp, func() {
		if _, err := local.New(local.Config{TrustDomain: td, Dir: filepath.Join(base, "ca")}); err != nil {
			t.Fatal(err)
		}
	})
	if len(created) != 0 {
		t.Fatalf("files created in TMPDIR while the CA was made: %v, want none", created)
	}
}
