package local_test

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/rotation"
)

// maxSignsPerSecond bounds the sign attempts one identity may make in a
// fake second; a renewal loop makes hundreds.
const maxSignsPerSecond = 2

// lifeRig drives one local CA and one identity through fake time. The
// identity is renewed as the agent's scheduler would: at the earliest
// point rotation.DefaultPolicy allows, and after a failure when
// rotation's default Backoff says (both with jitter r=0, the soonest).
type lifeRig struct {
	t        *testing.T
	clk      *clocktesting.FakeClock
	c        *local.CA
	logs     *testutil.Buffer
	id       spiffeid.ID
	due      time.Time
	attempt  int
	validity rotation.Validity
	refused  []error // sign errors, in order
	signed   int
}

func newLifeRig(t *testing.T, dir string) *lifeRig {
	t.Helper()
	r := &lifeRig{t: t, clk: clocktesting.NewFakeClock(t0), logs: &testutil.Buffer{}, id: spiffeid.RequireFromString("spiffe://example.org/w")}
	r.c = newCA(t, local.Config{Clock: r.clk, TTL: 2 * time.Hour, Dir: dir, Logger: slog.New(slog.NewJSONHandler(r.logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	r.due = t0
	return r
}

// step advances fake time by d once the maintenance loop waits on the
// clock, waits until it waits again (so it has done what d made due),
// then renews the identity if it is due.
func (r *lifeRig) step(d time.Duration) {
	r.t.Helper()
	testutil.Eventually(r.t, "the maintenance loop to wait on the clock", r.clk.HasWaiters)
	r.clk.Step(d)
	testutil.Eventually(r.t, "the maintenance loop to wait on the clock again", r.clk.HasWaiters)
	r.renew()
}

func (r *lifeRig) renew() {
	r.t.Helper()
	now := r.clk.Now()
	for n := 1; !now.Before(r.due); n++ {
		if n > maxSignsPerSecond {
			r.t.Fatalf("at %v: renewal loop: %d sign attempts in one fake second (last SVID valid %v..%v)", now, n, r.validity.NotBefore, r.validity.NotAfter)
		}
		key, err := ca.KeyECP256.Generate()
		if err != nil {
			r.t.Fatal(err)
		}
		chain, err := r.c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: r.id, Key: key, TTL: 10 * time.Minute})
		if err != nil {
			r.refused = append(r.refused, err)
			r.attempt++
			r.due = now.Add(rotation.Backoff{}.Delay(r.attempt, r.validity.NotAfter.Sub(now), 0))
			continue
		}
		r.check(chain, now)
		r.signed++
		r.attempt = 0
		r.validity = rotation.Validity{NotBefore: chain[0].NotBefore, NotAfter: chain[0].NotAfter}
		r.due = rotation.DefaultPolicy.RenewAt(r.validity, 0)
	}
}

// check fails unless leaf lies within its issuer's validity and chains to
// the CA's published bundle at now.
func (r *lifeRig) check(chain []*x509.Certificate, now time.Time) {
	r.t.Helper()
	leaf, bundle := chain[0], r.c.Authorities().X509
	for _, issuer := range bundle {
		if leaf.CheckSignatureFrom(issuer) != nil {
			continue
		}
		if leaf.NotBefore.Before(issuer.NotBefore) || leaf.NotAfter.After(issuer.NotAfter) {
			r.t.Fatalf("at %v: SVID valid %v..%v outside its issuer's %v..%v", now, leaf.NotBefore, leaf.NotAfter, issuer.NotBefore, issuer.NotAfter)
		}
	}
	if err := ca.CheckX509SVID(chain, r.id, bundle, now); err != nil {
		r.t.Fatalf("at %v: signed an SVID that does not verify: %v", now, err)
	}
}

// failures counts the maintenance failures logged so far.
func (r *lifeRig) failures() int {
	return strings.Count(r.logs.String(), `"msg":"CA maintenance failed`)
}

// stepEach advances by d, n times, and fails if more than maxFailures
// maintenance failures are logged over those steps.
func (r *lifeRig) stepEach(d time.Duration, n, maxFailures int) {
	r.t.Helper()
	before := r.failures()
	for range n {
		r.step(d)
	}
	if got := r.failures() - before; got > maxFailures {
		r.t.Fatalf("%d maintenance attempts failed in %v of fake time, want at most %d (backoff)", got, time.Duration(n)*d, maxFailures)
	}
}

// unwritable replaces dir by a regular file, so every write under it fails
// with ENOTDIR, for root too (chmod does not stop root), through the real
// write path; the returned func puts the directory back.
func unwritable(t *testing.T, dir string) (restore func()) {
	t.Helper()
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(moved, dir); err != nil {
			t.Fatal(err)
		}
	}
}

// The embedded CA's whole life with a data dir that cannot be written
// from before half life: the successor cannot be made, the active CA
// signs until MinIssuerLife before its NotAfter and then refuses
// (ca.ErrUnavailable) instead of signing SVIDs that do not chain; no SVID
// outlives its issuer; renewals and maintenance retries stay bounded per
// fake second; nothing panics after the CA expired; once the directory is
// writable again a new CA is published, then signs.
func TestLifeWithUnwritableDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	r := newLifeRig(t, dir)
	first := r.c.Authorities()
	r.stepEach(time.Minute, 30, 0)
	restore := unwritable(t, dir)

	// Half life passes without a successor; retries back off to a minute.
	r.stepEach(time.Minute, 85, 85)
	if h := r.c.Health(); h == nil || errors.Is(h, ca.ErrUnavailable) || !strings.Contains(h.Error(), "make "+dir+" writable") {
		t.Fatalf("Health with the active CA still signing = %v, want a warning (not ca.ErrUnavailable) saying to make %s writable", h, dir)
	}
	r.stepEach(time.Second, 5*60, 6)
	if len(r.refused) == 0 {
		t.Fatal("the CA never refused to sign before its NotAfter")
	}
	for _, err := range r.refused {
		if !errors.Is(err, ca.ErrUnavailable) || !strings.Contains(err.Error(), "make "+dir+" writable") {
			t.Fatalf("refusal %v is not ca.ErrUnavailable saying to make %s writable", err, dir)
		}
	}
	// Past the NotAfter: no CA signs, nothing panics.
	r.refused = nil
	r.stepEach(time.Second, 3*60, 4)
	if got := r.c.Authorities(); len(got.X509) != 0 || got.Signing != "" {
		t.Fatalf("after expiry: bundle of %d CAs signed by %q, want none", len(got.X509), got.Signing)
	}
	last := r.refused[len(r.refused)-1]
	if !errors.Is(last, ca.ErrUnavailable) || !errors.Is(last, ca.ErrExpired) || !strings.Contains(last.Error(), "make "+dir+" writable") {
		t.Fatalf("refusal after expiry = %v, want ca.ErrUnavailable saying to make %s writable", last, dir)
	}

	if h := r.c.Health(); !errors.Is(h, ca.ErrUnavailable) {
		t.Fatalf("Health after expiry = %v, want ca.ErrUnavailable", h)
	}

	restore()
	signedBefore := r.signed
	r.stepEach(time.Second, 3*60, 1)
	now := r.c.Authorities()
	if r.signed == signedBefore || now.Signing == "" || now.Signing == first.Signing {
		t.Fatalf("after the directory came back: %d new SVIDs, signing %q (first CA %q); want a new CA signing", r.signed-signedBefore, now.Signing, first.Signing)
	}
	if h := r.c.Health(); h != nil {
		t.Fatalf("Health after recovery = %v, want nil", h)
	}
}

// A CA prepared by hand (PrepareCA) while no CA is active, here after the
// only CA expired with the data dir unwritable, is held as one that
// maintenance prepares is: published at once, it neither signs nor can be
// activated until a minute later (publishDelay), when Run activates it.
func TestPrepareCAWithNoActiveCASignsOnlyAMinuteLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	clk := clocktesting.NewFakeClock(t0)
	c := newCA(t, local.Config{Clock: clk, TTL: time.Hour, Dir: dir})
	restore := unwritable(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// Past the CA's NotAfter: maintenance drops it and cannot write a
	// successor, so no CA is active; it retries a second later.
	testutil.Eventually(t, "the maintenance loop to wait on the clock", clk.HasWaiters)
	clk.Step(time.Hour + time.Minute)
	testutil.Eventually(t, "maintenance to fail with no CA left", func() bool { return errors.Is(c.Health(), ca.ErrUnavailable) })
	restore()
	p, err := c.PrepareCA(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	signAt := func() error {
		_, err := c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: spiffeid.RequireFromString("spiffe://example.org/w"), Key: testutil.NewKey(t), TTL: 10 * time.Minute})
		return err
	}
	if _, err := c.ActivateCA(context.Background()); !errors.Is(err, ca.ErrInvalidRequest) || !strings.Contains(err.Error(), "starts signing at "+t0.Add(time.Hour+2*time.Minute).Format(time.RFC3339)) {
		t.Fatalf("ActivateCA right after PrepareCA with no CA active: err = %v, want ca.ErrInvalidRequest naming when it signs", err)
	}

	// The retry a second later succeeds and must not activate the CA yet.
	testutil.Eventually(t, "the maintenance loop to wait on the clock", clk.HasWaiters)
	clk.Step(time.Second)
	testutil.Eventually(t, "maintenance to succeed", func() bool { return c.Health() == nil })
	if err := signAt(); !errors.Is(err, ca.ErrUnavailable) || !strings.Contains(err.Error(), "starts signing at") {
		t.Fatalf("signing a second after PrepareCA with no CA active: err = %v, want ca.ErrUnavailable until a minute has passed", err)
	}
	if got := c.Authorities(); got.Signing != "" || len(got.X509) != 1 || !got.X509[0].Equal(p.Certificate) {
		t.Fatalf("a second after PrepareCA: signing %q with %d CAs, want the prepared CA published and not signing", got.Signing, len(got.X509))
	}

	changed := c.Changed()
	testutil.Eventually(t, "the maintenance loop to wait on the clock", clk.HasWaiters)
	clk.Step(time.Minute - time.Second) // to a minute (publishDelay) after PrepareCA
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the prepared CA was not activated a minute after PrepareCA")
	}
	if err := signAt(); err != nil {
		t.Fatalf("a minute after PrepareCA: %v", err)
	}
	if got := c.Authorities().Signing; got != p.ID {
		t.Fatalf("signing CA %q, want the prepared %s", got, p.ID)
	}
}
