package attest

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/peer"
)

// A connection's unix attestation is reused on its later calls without
// reading /proc again (here: /proc is swapped for an empty directory, so a
// read would fail), until it is nameTTL old, or a digest is wanted that it
// does not have; a caller without a Memo is attested afresh every time.
func TestUnixAttestationIsReusedPerConnection(t *testing.T) {
	now := time.Now()
	u := &Unix{NeedDigest: func(Set) bool { return false }, clock: func() time.Time { return now }}
	self := peer.Caller{PID: int32(os.Getpid()), UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Memo: &peer.Memo{}}
	first, err := u.Attest(context.Background(), self)
	if err != nil {
		t.Fatal(err)
	}
	u.ProcRoot = t.TempDir() // nothing to read there
	attestAgain := func() ([]Selector, error) { return u.Attest(context.Background(), self) }

	again, err := attestAgain()
	if err != nil || !slices.Equal(again, first) {
		t.Fatalf("second call on the connection: %v, %v; want the first's selectors from the memo", again, err)
	}
	fresh := self
	fresh.Memo = &peer.Memo{}
	if _, err := u.Attest(context.Background(), fresh); err == nil {
		t.Fatal("a new connection was not attested afresh: it read nothing and still succeeded")
	}
	noMemo := self
	noMemo.Memo = nil
	if _, err := u.Attest(context.Background(), noMemo); err == nil {
		t.Fatal("a caller without a Memo was not attested afresh")
	}

	u.NeedDigest = func(Set) bool { return true }
	if _, err := attestAgain(); err == nil {
		t.Fatal("a memo without the digest was reused when the digest is wanted")
	}
	u.NeedDigest = func(Set) bool { return false }
	now = now.Add(nameTTL)
	if _, err := attestAgain(); err == nil {
		t.Fatalf("a memo %v old was reused", nameTTL)
	}

	u.ProcRoot = ""
	u.NeedDigest = func(Set) bool { return true }
	withDigest, err := attestAgain()
	if err != nil || !slices.ContainsFunc(withDigest, func(s Selector) bool { return strings.HasPrefix(s.Value, "sha256:") }) {
		t.Fatalf("re-attested with the digest wanted: %v, %v", withDigest, err)
	}
	u.ProcRoot = t.TempDir()
	u.NeedDigest = func(Set) bool { return false }
	if got, err := attestAgain(); err != nil || !slices.Equal(got, withDigest) {
		t.Fatalf("a memo with the digest was not reused when none is wanted: %v, %v", got, err)
	}
}
