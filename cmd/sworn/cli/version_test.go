package cli_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// buildSworn builds ./cmd/sworn into a temporary directory with the given
// -ldflags, as a release build does, and returns the binary. It stamps the
// git revision whatever GOFLAGS says (-buildvcs=false in some CI images), as
// the fallback needs it.
func buildSworn(t *testing.T, ldflags string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH to build sworn with: " + err.Error())
	}
	bin := filepath.Join(t.TempDir(), "sworn")
	cmd := exec.Command(goBin, "build", "-buildvcs=true", "-ldflags", ldflags, "-o", bin, "./cmd/sworn")
	cmd.Dir = testutil.Root(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sworn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestVersionFromLinkerFlags(t *testing.T) {
	const pkg = "github.com/sworn-id/sworn/internal/version"
	bin := buildSworn(t, "-X "+pkg+".version=v9.8.7 -X "+pkg+".commit=0123456789abcdef0123456789abcdef01234567")

	var got map[string]any
	if err := json.Unmarshal([]byte(runBin(t, bin, "version", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version": "v9.8.7", "commit": "0123456789abcdef0123456789abcdef01234567", "modified": false,
		"go_version": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH,
	}
	if len(got) != len(want) {
		t.Errorf("sworn version -o json = %v, want exactly the keys of %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("sworn version -o json: %s = %v, want %v", k, got[k], v)
		}
	}
	wantLine := "sworn v9.8.7 (commit 0123456789ab, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if got := runBin(t, bin, "--version"); got != wantLine {
		t.Errorf("sworn --version = %q, want %q", got, wantLine)
	}
}

// Without -ldflags the binary reports what the toolchain stamped: the
// module version and the commit git names (the tree may be dirty while
// others edit it, so Modified is not checked).
func TestVersionFallsBackOnBuildInfo(t *testing.T) {
	// The go command stamps vcs.revision only in a checkout whose .git is
	// a directory: not in a `git worktree` (.git is a file) or an export.
	if fi, err := os.Stat(filepath.Join(testutil.Root(t), ".git")); err != nil || !fi.IsDir() {
		t.Skip("not a plain git checkout (a worktree or an export): the toolchain stamps no commit to fall back on")
	}
	bin := buildSworn(t, "")
	out := runBin(t, bin, "version")
	m := regexp.MustCompile(`(?m)^Version:\s+(\S+)\nCommit:\s+(\S+)\nModified:\s+(true|false)\nGo version:\s+(\S+)\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("sworn version printed\n%s\nwant Version, Commit, Modified and Go version lines", out)
	}
	// Go 1.24+ stamps a checkout build with a pseudo-version naming the
	// commit (v0.0.0-20261126072938-f0aa207c942e+dirty), older ones "(devel)".
	if m[1] != "(devel)" && !strings.Contains(m[1], "-"+m[2][:min(12, len(m[2]))]) {
		t.Errorf("version = %q, want the build info's: (devel) or a pseudo-version naming commit %s", m[1], m[2])
	}
	if m[4] != runtime.Version() {
		t.Errorf("go version = %q, want %q", m[4], runtime.Version())
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(m[2]) {
		t.Fatalf("commit = %q, want vcs.revision (a full hash)", m[2])
	}
	git := exec.Command("git", "cat-file", "-e", m[2]+"^{commit}")
	git.Dir = testutil.Root(t)
	if out, err := git.CombinedOutput(); err != nil {
		t.Errorf("commit %s is not a commit of this repository: %v\n%s", m[2], err, out)
	}
}

func TestVersionOutputFormats(t *testing.T) {
	var got map[string]any
	if err := json.Unmarshal([]byte(clitest.Run(t, "version", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "commit", "modified", "go_version", "platform"} {
		if _, ok := got[k]; !ok {
			t.Errorf("sworn version -o json has no %q: %v", k, got)
		}
	}
	err := clitest.Fail(t, "version", "-o", "yaml")
	// The same refusal as every other command's -o (addOutputFlag).
	if want := `invalid argument "yaml" for "-o, --output" flag: want text or json`; err.Error() != want {
		t.Errorf("sworn version -o yaml: %v, want %q", err, want)
	}
	if out := clitest.Run(t, "--version"); !strings.HasPrefix(out, "sworn ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("sworn --version = %q, want the one-line version", out)
	}
}
