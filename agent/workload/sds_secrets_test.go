package workload

import (
	"bytes"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// held reports how many SVIDs' and bundle contexts' built secrets the
// server keeps, and the SVID entry of path's key (nil if none).
func (f *sdsFixture) held(path string) (svids, contexts int, entry *svidSecrets) {
	c := &f.d.secrets
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.svids {
		if e.svid.Entry.ID.Path() == path {
			entry = e
		}
	}
	if b := c.bundles.Load(); b != nil {
		b.mu.Lock()
		contexts = len(b.byKey)
		b.mu.Unlock()
	}
	return len(c.svids), contexts, entry
}

// What is kept does not grow with streams: one entry per SVID however
// many streams hold it, replaced (not added to) on rotation and not
// evicted by a late stream still on the old SVID, none past the SVID's
// expiry, and the validation contexts of the latest bundle snapshot only.
func TestSDSSharedSecretsStayBounded(t *testing.T) {
	f := newSDSFixture(t)
	web := f.svid(t, "/web", time.Hour)
	names := []string{"default", "ROOTCA", "ALL"}
	for range 1000 {
		f.respond(t, names, web)
	}
	if svids, contexts, e := f.held("/web"); svids != 1 || contexts != 2 || e == nil || e.svid != web {
		t.Fatalf("after 1,000 streams: %d SVID entries (want 1, web's), %d contexts (want ROOTCA and ALL)", svids, contexts)
	}

	f.clock.Step(time.Second)
	rotated := f.svid(t, "/web", time.Hour)
	f.respond(t, names, rotated)
	late := f.respond(t, []string{"default"}, web)
	if !bytes.Equal(keyOf(t, late, "default"), web.KeyDER) {
		t.Fatal("a late stream on the old SVID was not sent its own key")
	}
	if svids, _, e := f.held("/web"); svids != 1 || e == nil || e.svid != rotated {
		t.Fatalf("after a rotation and a late stream: %d SVID entries (web's the new SVID: %v), want 1, the new SVID", svids, e != nil && e.svid == rotated)
	}

	db := f.svid(t, "/db", 2*time.Hour)
	f.respond(t, names, db)
	if svids, _, _ := f.held("/db"); svids != 2 {
		t.Fatalf("two identities: %d SVID entries, want 2", svids)
	}
	f.clock.Step(time.Hour) // web's SVID has expired; db's has not
	f.respond(t, names, db)
	if svids, _, e := f.held("/web"); svids != 1 || e != nil {
		t.Fatalf("after web's SVID expired: %d SVID entries (web's kept: %v), want db's only", svids, e != nil)
	}

	f.bundles.set(2, f.ca)
	f.respond(t, []string{"ROOTCA"}, db)
	if _, contexts, _ := f.held("/db"); contexts != 1 {
		t.Fatalf("after a bundle change: %d contexts, want the new snapshot's ROOTCA only", contexts)
	}
	old := &bundleDERs{seq: 1, der: f.d.s.bundleDER()}
	if _, err := f.d.secrets.validation(old, "ROOTCA", true, []spiffeid.TrustDomain{sdsTD}); err != nil {
		t.Fatal(err)
	}
	if b := f.d.secrets.bundles.Load(); b.seq != 2 {
		t.Fatalf("a late stream on snapshot 1 replaced snapshot %d's contexts", b.seq)
	}
}
