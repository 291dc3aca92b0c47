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

// The bundle files are trust anchors: a cert or JWT bundle file mode that
// lets group or others write would let any local user put their own CA or
// keys in them between rotations, so it needs --unsafe-key-mode as a key
// mode others can read does.
func TestCheckModesRefusesABundleOthersCanWrite(t *testing.T) {
	tests := []struct {
		name    string
		plan    writePlan
		wantErr string
	}{
		{name: "defaults", plan: writePlan{svidName: "s", certMode: 0o644, keyMode: 0o600, jwtBundleName: "b", jwtBundleMode: 0o600}},
		{name: "world-writable cert and bundle", plan: writePlan{svidName: "s", certMode: 0o666, keyMode: 0o600}, wantErr: "cert file mode 0666"},
		{name: "group-writable JWT bundle", plan: writePlan{jwtBundleName: "b", jwtBundleMode: 0o620}, wantErr: "JWT bundle file mode 0620"},
		{name: "no X.509 files: cert mode unused", plan: writePlan{certMode: 0o666}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plan.checkModes(false)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkModes = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkModes = %v, want an error with %q", err, tt.wantErr)
			}
			if err := tt.plan.checkModes(true); err != nil {
				t.Fatalf("with --unsafe-key-mode: %v, want nil", err)
			}
		})
	}
}

// File names are inside the directory whose owner and mode were checked:
// a helper.conf naming "../x" would put the key, or take the bundle, in a
// directory nobody checked.
func TestPlanRefusesFileNamesOutsideTheDirectory(t *testing.T) {
	base := svidWriteOptions{dir: "/certs", svidName: "svid.pem", keyName: "svid_key.pem", bundleNm: "bundle.pem",
		certMode: "0644", keyMode: "0600", jwtSVIDMode: "0600", jwtBundleMode: "0600"}
	tests := []struct {
		name string
		edit func(o *svidWriteOptions)
	}{
		{name: "key up a level", edit: func(o *svidWriteOptions) { o.keyName = "../svid_key.pem" }},
		{name: "bundle absolute", edit: func(o *svidWriteOptions) { o.bundleNm = "/etc/bundle.pem" }},
		{name: "JWT bundle up a level", edit: func(o *svidWriteOptions) { o.jwtBundleName = "a/../../b.json" }},
		{name: "JWT-SVID up a level", edit: func(o *svidWriteOptions) { o.jwtSVIDs = []string{"aud=../../tmp/t.jwt"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.edit(&o)
			if _, err := o.plan(); err == nil || !strings.Contains(err.Error(), "outside") {
				t.Fatalf("plan() = %v, want a refusal of a name outside the directory", err)
			}
		})
	}
	if _, err := base.plan(); err != nil {
		t.Fatalf("plan() with plain names = %v", err)
	}
}
