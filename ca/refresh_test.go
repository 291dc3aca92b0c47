package ca_test

import (
	"testing"
	"time"

	"github.com/sworn-id/sworn/ca"
)

// TestRefreshWaitSpreadsAgentsAndNeverPassesTheRefresh: agents started in
// the same second draw their first refresh anywhere in the period, and
// every wait after it is within the last fifth of bundle_refresh, never
// longer (a new CA must reach every agent within bundle_refresh).
func TestRefreshWaitSpreadsAgentsAndNeverPassesTheRefresh(t *testing.T) {
	const refresh = 30 * time.Second
	tests := []struct {
		name  string
		r     float64
		first bool
		want  time.Duration
	}{
		{name: "first, r=0: the whole period", r: 0, first: true, want: refresh},
		{name: "first, r=0.5: half", r: 0.5, first: true, want: 15 * time.Second},
		{name: "first, r near 1: soon, not at once", r: 0.99999999, first: true, want: time.Millisecond},
		{name: "next, r=0", r: 0, want: refresh},
		{name: "next, r=0.5", r: 0.5, want: 27 * time.Second},
		{name: "next, r near 1", r: 0.999, want: time.Duration((1 - 0.2*0.999) * float64(refresh))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ca.RefreshWait(refresh, tt.r, tt.first); got != tt.want {
				t.Fatalf("RefreshWait = %v, want %v", got, tt.want)
			}
		})
	}
}
