package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/cmd/sworn/cli"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// TestSVIDWriteStagesOnlyInItsDirectory: `svid write` stages every file
// (key, certificates, JWT-SVID, JWT bundle) in the directory it writes to
// and renames it into place, so a key never lands, even for a moment, in
// $TMPDIR or beside the directory, and no temp file is left behind after
// a write or after a rotation. TMPDIR is a private directory on the same
// filesystem, where a writer that stages in os.TempDir would put them.
func TestSVIDWriteStagesOnlyInItsDirectory(t *testing.T) {
	a := agenttest.Start(t, agenttest.Config(t))
	root := t.TempDir()
	tmp, dir := filepath.Join(root, "tmp"), filepath.Join(root, "certs")
	for _, d := range []string{tmp, dir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("TMPDIR", tmp)
	args := []string{"svid", "write", "--dir", dir, "--socket", a.Config.SocketPath,
		"--jwt-svid", "test=app.jwt", "--jwt-bundle-file-name", "jwt_bundle.json"}
	final := []string{"app.jwt", "bundle.pem", "jwt_bundle.json", "svid.pem", "svid_key.pem"}

	check := func(what string, write func()) {
		t.Helper()
		var inDir, inRoot []string
		inTmp := testutil.CreatedIn(t, tmp, func() {
			inRoot = testutil.CreatedIn(t, root, func() { inDir = testutil.CreatedIn(t, dir, write) })
		})
		if len(inTmp) != 0 || len(inRoot) != 0 {
			t.Fatalf("%s created %q in $TMPDIR and %q beside %s; want nothing outside it", what, inTmp, inRoot, dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, e := range entries {
			left = append(left, e.Name())
		}
		if !slices.Equal(left, final) {
			t.Fatalf("after %s %s holds %q; want exactly %q (created meanwhile: %q)", what, dir, left, final, inDir)
		}
		// The staging files were seen, and are gone: the check above is not
		// blind to them.
		if staged := slices.DeleteFunc(slices.Clone(inDir), func(n string) bool { return slices.Contains(final, n) }); len(staged) < len(final) {
			t.Fatalf("%s staged %q in %s; want a temp file for each of %q", what, staged, dir, final)
		}
	}

	check("a write", func() { clitest.Run(t, append(args, "--once")...) })
	check("a rotation", func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd := cli.NewCommand(ctx)
		out := &testutil.Buffer{}
		cmd.SetOut(out)
		cmd.SetErr(out)
		cmd.SetArgs(args)
		done := make(chan error, 1)
		go func() { done <- cmd.Execute() }()
		wrote := func() int { return strings.Count(out.String(), "wrote spiffe://") }
		testutil.Eventually(t, "the first write", func() bool {
			return wrote() == 1 && strings.Contains(out.String(), "wrote JWT bundle") && strings.Contains(out.String(), "wrote JWT-SVID")
		})
		clitest.Run(t, "rotate", "svids", "--all", "--admin-socket", a.Config.AdminSocketPath)
		testutil.Eventually(t, "the rotation's write", func() bool { return wrote() >= 2 })
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("svid write: %v\n%s", err, out.String())
		}
	})
}
