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

// renameio.WriteFile copies the mode of the file it replaces over the one
// asked for: a key file left 0644 (by an older run with --unsafe-key-mode,
// or by hand) made every new key 0644 too, though svid write checked 0600.
func TestWriteFileGivesExactlyTheModeAskedWhateverTheOldFileHad(t *testing.T) {
	dir := testutil.ShortTempDir(t, "wf")
	if err := os.WriteFile(filepath.Join(dir, "svid_key.pem"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "svid_key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir, "svid_key.pem", []byte("new key"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "svid_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the new key file is %v, want 0600 (the old file was 0644)", fi.Mode().Perm())
	}
}
