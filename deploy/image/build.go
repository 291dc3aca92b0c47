package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// User is the image's default user: distroless's nonroot. The agent's
// DaemonSet overrides it with runAsUser 0; other commands need not.
const User = "65532:65532"

// Entrypoint is where the binary sits in the image.
const Entrypoint = "/usr/local/bin/sworn"

// Platforms the image index holds, in this order.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

const versionPkg = "github.com/sworn-id/sworn/internal/version"

type options struct {
	repo, out, version, caCerts, source string
	name                                string    // repository docker load tags it as
	commit                              string    // from git
	created                             time.Time // the commit's time, from git
}

// run builds the binaries, the images and the index, writes the layout to
// o.out and returns the index's digest.
func run(o *options) (v1.Hash, error) {
	if err := o.fromGit(); err != nil {
		return v1.Hash{}, err
	}
	base, err := baseLayer(o.caCerts, o.created)
	if err != nil {
		return v1.Hash{}, err
	}
	tmp, err := os.MkdirTemp("", "sworn-image-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(tmp)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range Platforms {
		bin, err := o.buildBinary(p, filepath.Join(tmp, p.Architecture, "sworn"))
		if err != nil {
			return v1.Hash{}, err
		}
		img, err := o.image(p, base, bin)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("%s image: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx = mutate.Annotations(idx, o.labels()).(v1.ImageIndex)
	if err := write(o.out, idx, o.version, o.name); err != nil {
		return v1.Hash{}, err
	}
	return idx.Digest()
}

// fromGit fills the commit, its time and (unless given) the version: the
// tag at HEAD, else the pseudo-version Go itself would give HEAD, marked
// -dirty when tracked files differ from it.
func (o *options) fromGit() error {
	out, err := o.git("show", "-s", "--format=%H %cI", "HEAD")
	if err != nil {
		return err
	}
	hash, when, _ := strings.Cut(out, " ")
	if o.created, err = time.Parse(time.RFC3339, when); err != nil {
		return fmt.Errorf("commit time %q: %w", when, err)
	}
	o.created, o.commit = o.created.UTC(), hash
	if o.version == "" {
		if tag, err := o.git("describe", "--tags", "--exact-match", "HEAD"); err == nil {
			o.version = tag
		} else {
			o.version = "v0.0.0-" + o.created.Format("20060102150405") + "-" + hash[:12]
		}
		// The binary is built from the tree, not the commit: say so when
		// they differ (a tag here is still marked, it is not that tag).
		st, err := o.git("status", "--porcelain", "--untracked-files=no")
		if err != nil {
			return err
		}
		if st != "" {
			o.version += "-dirty"
		}
	}
	return nil
}

func (o *options) git(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = o.repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// buildBinary builds the release binary for p: static, without paths of
// the build machine, without symbol and DWARF tables, version stamped.
func (o *options) buildBinary(p v1.Platform, out string) (string, error) {
	ldflags := fmt.Sprintf("-s -w -X %s.version=%s -X %s.commit=%s", versionPkg, o.version, versionPkg, o.commit)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./cmd/sworn")
	cmd.Dir = o.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build for %s: %w\n%s", p, err, b)
	}
	return out, nil
}

// labels are the OCI annotations the images and the index carry.
func (o *options) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    "sworn",
		"org.opencontainers.image.source":   o.source,
		"org.opencontainers.image.version":  o.version,
		"org.opencontainers.image.revision": o.commit,
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  o.created.Format(time.RFC3339),
	}
}

// write replaces dir with an OCI layout whose index.json holds idx alone,
// named by version.
func write(dir string, idx v1.ImageIndex, version, name string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": version,
		// docker load (the containerd image store) names the image by it.
		"io.containerd.image.name": name + ":" + version,
	}))
}
