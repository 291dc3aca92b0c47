package cache_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/testutil"
)

// anchoringSigner is a countingSigner that also publishes the CA's trust
// anchors, as every ca.Authority does, so persisted files keep them.
type anchoringSigner struct{ *countingSigner }

func (s anchoringSigner) Authorities() ca.Authorities { return s.ca.Authorities() }

// persistOne issues /web (TTL 1h) through a cache persisting into dir and
// returns the SVID served.
func persistOne(t *testing.T, signer cache.Signer, dir string) *cache.SVID {
	t.Helper()
	c := cache.New(cache.Config{Signer: signer, Dir: dir})
	sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/web")}, cache.Requester{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	c.Flush() // the file is written off the renewal path
	return sub.SVIDs()[0]
}

// restarted is a cache over dir whose clock reads after, and whose CA is
// down (every call fails) until the test says otherwise.
func restarted(t *testing.T, signer *countingSigner, dir string, after time.Duration) *cache.Cache {
	t.Helper()
	signer.failing.Store(true)
	signer.calls.Store(0)
	clk := clocktesting.NewFakeClock(time.Now().Add(after))
	return cache.New(cache.Config{Signer: signer, Dir: dir, Clock: clk})
}

func svidFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// servedWithoutCA subscribes to /web on c (whose CA is down) and checks it
// gets want without a CA call.
func servedWithoutCA(t *testing.T, c *cache.Cache, signer *countingSigner, want *cache.SVID) {
	t.Helper()
	sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/web")}, cache.Requester{})
	if err != nil {
		t.Fatalf("the restored SVID is not served while the CA is down: %v", err)
	}
	defer sub.Close()
	if got := sub.SVIDs()[0].Serial; got != want.Serial {
		t.Fatalf("served serial %v, want the persisted %v", got, want.Serial)
	}
	if n := signer.calls.Load(); n != 0 {
		t.Fatalf("%d CA calls to serve a restored SVID", n)
	}
}

// An agent restarted while the CA is down keeps serving an SVID past its
// half-life (renewal is due at once, and fails until the CA returns), and
// drops only an expired one.
func TestRestoreServesEveryValidSVIDAndDropsExpiredOnes(t *testing.T) {
	signer := newSigner(t)
	dir := t.TempDir()
	want := persistOne(t, signer, dir)
	trusted := signer.ca.Authorities().X509

	c := restarted(t, signer, dir, 45*time.Minute) // three quarters of its life
	if n, _ := c.Restore(trusted); n != 1 {
		t.Fatalf("restored %d SVIDs past half-life, want 1", n)
	}
	servedWithoutCA(t, c, signer, want)
	run(t, c)
	testutil.Eventually(t, "the renewal due at once to be tried", func() bool { return signer.calls.Load() >= 1 })

	expired := restarted(t, signer, dir, time.Hour+time.Minute)
	if n, _ := expired.Restore(trusted); n != 0 {
		t.Fatalf("restored %d expired SVIDs, want 0", n)
	}
	if files := svidFiles(t, dir); len(files) != 0 {
		t.Fatalf("expired SVID files kept: %v", files)
	}
}

// Without a trusted bundle (bundle.pem unreadable, CA down) an SVID is
// served when it chains to the anchors kept in its own file; those anchors
// are returned for the agent to serve, and the SVID is renewed as soon as
// the CA answers. A file without anchors (written by an older agent) is
// not served but stays on disk: an unreadable bundle is no reason to lose it.
func TestRestoreWithoutBundleUsesTheAnchorsInTheFile(t *testing.T) {
	signer := newSigner(t)
	dir := t.TempDir()
	want := persistOne(t, anchoringSigner{signer}, dir)

	c := restarted(t, signer, dir, time.Minute)
	n, anchors := c.Restore(nil)
	if n != 1 {
		t.Fatalf("restored %d SVIDs without a bundle, want the one whose file keeps its anchors", n)
	}
	if trusted := signer.ca.Authorities().X509; len(anchors) != len(trusted) || !anchors[0].Equal(trusted[0]) {
		t.Fatalf("returned %d anchors, want the CA's %d", len(anchors), len(trusted))
	}
	servedWithoutCA(t, c, signer, want)
	run(t, c)
	testutil.Eventually(t, "the unverified SVID's renewal to be tried at once", func() bool { return signer.calls.Load() >= 1 })

	old := t.TempDir()
	signer.failing.Store(false)
	persistOne(t, signer, old) // a plain Signer: no anchors in the file
	c = restarted(t, signer, old, time.Minute)
	if n, anchors := c.Restore(nil); n != 0 || len(anchors) != 0 {
		t.Fatalf("restored %d SVIDs (anchors %d) that nothing verifies", n, len(anchors))
	}
	if files := svidFiles(t, old); len(files) != 1 {
		t.Fatalf("SVID files after a restore without a bundle: %v, want the one kept", files)
	}
}

// A file whose own anchors do not verify its chain is not served, and is
// kept too: only an expired, unparsable or misnamed file is removed.
func TestRestoreWithoutBundleRefusesAForeignAnchor(t *testing.T) {
	signer := newSigner(t)
	other := newSigner(t) // another CA: its anchor does not verify signer's SVIDs
	dir := t.TempDir()
	persistOne(t, signer, dir)
	files := svidFiles(t, dir)
	f, err := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(pemAnchor(other)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c := restarted(t, signer, dir, time.Minute)
	if n, _ := c.Restore(nil); n != 0 {
		t.Fatal("restored an SVID that does not chain to the anchors in its file")
	}
	if len(svidFiles(t, dir)) != 1 {
		t.Fatal("removed a persisted SVID because no bundle could verify it")
	}
}

func pemAnchor(s *countingSigner) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "SWORN TRUST ANCHOR", Bytes: s.ca.Authorities().X509[0].Raw})
}

// SVID files are written off the renewal path, but what Flush leaves on
// disk is exactly what the cache holds: the latest SVID of each identity,
// and no file for one dropped (a removal queued after a write is never
// undone by it).
func TestFilesFollowTheCacheAfterFlush(t *testing.T) {
	dir := t.TempDir()
	clk := clocktesting.NewFakeClock(time.Now())
	signer := anchoringSigner{newSignerOn(t, clk)}
	c := cache.New(cache.Config{Signer: signer, Dir: dir, Clock: clk, IdleTimeout: time.Minute})
	run(t, c)
	sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/web")}, cache.Requester{})
	if err != nil {
		t.Fatal(err)
	}
	fileSerial := func() string {
		t.Helper()
		c.Flush()
		files, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
		if len(files) == 0 {
			return ""
		}
		data, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				t.Fatalf("no certificate in %s", files[0])
			}
			if b.Type == "CERTIFICATE" {
				cert, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				return cert.SerialNumber.Text(16)
			}
		}
	}
	if got, want := fileSerial(), sub.SVIDs()[0].Serial; got != want {
		t.Fatalf("file holds serial %q, want the served %q", got, want)
	}
	for range 3 {
		if _, err := c.RotateAndWait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := fileSerial(), sub.SVIDs()[0].Serial; got != want {
		t.Fatalf("after three re-issues the file holds serial %q, want the latest %q", got, want)
	}
	sub.Close()
	testutil.Eventually(t, "the idle SVID to be dropped", func() bool {
		clk.Step(time.Minute)
		return c.Len() == 0
	})
	if got := fileSerial(); got != "" {
		t.Fatalf("a dropped identity's file is still there (serial %s)", got)
	}
}
