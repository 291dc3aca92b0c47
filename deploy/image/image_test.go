package main

import (
	"archive/tar"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layoutDir is the layout under test: SWORN_IMAGE_LAYOUT when make
// release-check built it with make image, else one built here the same way.
func layoutDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("SWORN_IMAGE_LAYOUT"); dir != "" {
		return dir
	}
	dir := filepath.Join(t.TempDir(), "image")
	if _, err := run(&options{repo: "../..", out: dir, caCerts: "/etc/ssl/certs/ca-certificates.crt",
		source: "https://github.com/sworn-id/sworn", name: "ghcr.io/sworn-id/sworn"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestImageLayout(t *testing.T) {
	root, err := layout.ImageIndexFromPath(layoutDir(t))
	if err != nil {
		t.Fatal(err)
	}
	rm, err := root.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Manifests) != 1 || rm.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json = %+v, want one OCI image index (crane push takes it as is)", rm.Manifests)
	}
	version := rm.Manifests[0].Annotations["org.opencontainers.image.ref.name"]
	idx, err := root.ImageIndex(rm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(Platforms) {
		t.Fatalf("image index holds %d manifests, want %d (%v)", len(im.Manifests), len(Platforms), Platforms)
	}
	for i, want := range Platforms {
		desc := im.Manifests[i]
		if desc.Platform == nil || !desc.Platform.Equals(want) {
			t.Errorf("manifest %d: platform %v, want %v", i, desc.Platform, want)
			continue
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(want.Architecture, func(t *testing.T) { checkImage(t, img, want, version, im.Annotations) })
	}
}

// checkImage checks one platform's image: its config, its labels, and the
// binary and CA certificates in its file system.
func checkImage(t *testing.T, img v1.Image, p v1.Platform, version string, indexAnnotations map[string]string) {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture {
		t.Errorf("config platform %s/%s, want %v", cf.OS, cf.Architecture, p)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != "/usr/local/bin/sworn" {
		t.Errorf("entrypoint %q, want [/usr/local/bin/sworn]", got)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root by default)", cf.Config.User)
	}
	labels := cf.Config.Labels
	created, err := time.Parse(time.RFC3339, labels["org.opencontainers.image.created"])
	if err != nil || !created.Equal(cf.Created.Time) {
		t.Errorf("created label %q (%v), want the config's created %v", labels["org.opencontainers.image.created"], err, cf.Created.Time)
	}
	want := map[string]string{
		"org.opencontainers.image.title":    "sworn",
		"org.opencontainers.image.source":   "https://github.com/sworn-id/sworn",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	for k, v := range want {
		if labels[k] != v || indexAnnotations[k] != v {
			t.Errorf("label %s = %q (index annotation %q), want %q", k, labels[k], indexAnnotations[k], v)
		}
	}
	if len(labels["org.opencontainers.image.revision"]) != 40 {
		t.Errorf("revision label %q, want a full commit hash", labels["org.opencontainers.image.revision"])
	}
	files := extract(t, img, "usr/local/bin/sworn", "etc/ssl/certs/ca-certificates.crt", "etc/passwd")
	checkCACerts(t, files["etc/ssl/certs/ca-certificates.crt"])
	if !strings.Contains(string(files["etc/passwd"]), ":65532:65532:") {
		t.Errorf("/etc/passwd has no user 65532:\n%s", files["etc/passwd"])
	}
	checkBinary(t, files["usr/local/bin/sworn"], p, labels)
}

// extract returns the named files of the image's flattened file system.
func extract(t *testing.T, img v1.Image, names ...string) map[string][]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	got := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if h.Name == n {
				if got[n], err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
				if n == "usr/local/bin/sworn" && h.Mode&0o111 == 0 {
					t.Errorf("%s has mode %o, want it executable", n, h.Mode)
				}
			}
		}
	}
	for _, n := range names {
		if len(got[n]) == 0 {
			t.Errorf("image has no /%s (or it is empty)", n)
		}
	}
	return got
}

func checkCACerts(t *testing.T, data []byte) {
	t.Helper()
	var n int
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if _, err := x509.ParseCertificate(block.Bytes); err == nil {
			n++
		}
	}
	if n < 10 {
		t.Errorf("ca-certificates.crt holds %d certificates, want a CA bundle", n)
	}
}

// checkBinary checks the binary is static, stripped and built for p; the
// one this machine can run must print the version and commit the labels
// name.
func checkBinary(t *testing.T, bin []byte, p v1.Platform, labels map[string]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sworn")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wantMachine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.Architecture]
	if f.Machine != wantMachine {
		t.Errorf("binary for %s is %v", p.Architecture, f.Machine)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("binary has a dynamic loader (PT_INTERP): want a static build (CGO_ENABLED=0)")
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("binary has a symbol table: want -ldflags -s -w")
	}
	if p.Architecture != "amd64" {
		return
	}
	out, err := exec.Command(path, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("sworn version from the image: %v", err)
	}
	var v struct{ Version, Commit, Platform string }
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("sworn version -o json: %v\n%s", err, out)
	}
	if v.Version != labels["org.opencontainers.image.version"] || v.Commit != labels["org.opencontainers.image.revision"] || v.Platform != "linux/amd64" {
		t.Errorf("sworn version in the image says %+v, want the labels' version %q and commit %q on linux/amd64",
			v, labels["org.opencontainers.image.version"], labels["org.opencontainers.image.revision"])
	}
}

// The image runs as 65532 by default; the agent needs root (SO_PEERCRED
// on other users' processes, /proc/<pid>/exe), which its DaemonSet asks
// for. A manifest that lost runAsUser 0 would run the agent as nonroot.
func TestDaemonSetRunsTheAgentAsRoot(t *testing.T) {
	ds, err := os.ReadFile("../kubernetes/base/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ds), "runAsUser: 0\n") {
		t.Errorf("deploy/kubernetes/base/daemonset.yaml does not set runAsUser: 0; the image's default user is %s", User)
	}
}
