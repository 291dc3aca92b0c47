package admin_test

import (
	"context"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/admin"
	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/ca"
)

// rulesOnly is a registry that only counts its rules.
type rulesOnly int

func (rulesOnly) Match(attest.Set) ([]registry.Entry, []error) { return nil, nil }
func (n rulesOnly) Len() int                                   { return int(n) }

// noCAs is an authority that trusts nothing yet (a CA down at start).
type noCAs struct{ ca.Authority }

func (noCAs) Authorities() ca.Authorities { return ca.Authorities{} }

// noSVIDs is a cache that holds nothing.
type noSVIDs struct{}

func (noSVIDs) Identities() []cache.Identity { return nil }
func (noSVIDs) Rotate(...spiffeid.ID) int    { return 0 }

// sworn status shows how many rules are in force: the registry's count,
// read at each call, so a reload shows at once.
func TestStatusCountsTheRulesInForce(t *testing.T) {
	for _, n := range []int{0, 3} {
		s := admin.New(admin.Config{Registry: rulesOnly(n), Authority: noCAs{}, Cache: noSVIDs{}})
		resp, err := s.GetStatus(context.Background(), &adminpb.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetRules() != int32(n) {
			t.Fatalf("status shows %d rules, want %d", resp.GetRules(), n)
		}
	}
}
