package rotation_test

import (
	"testing"
	"time"

	"github.com/sworn-id/sworn/rotation"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestPolicyRenewAt(t *testing.T) {
	v := rotation.Validity{NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	tests := []struct {
		name   string
		policy rotation.Policy
		r      float64
		want   time.Duration
	}{
		{name: "default at middle", policy: rotation.Policy{}, r: 0.5, want: 30 * time.Minute},
		{name: "default earliest", policy: rotation.Policy{}, r: 0, want: 24 * time.Minute},
		{name: "default latest", policy: rotation.Policy{}, r: 1, want: 36 * time.Minute},
		{name: "no jitter", policy: rotation.Policy{Jitter: -1}, r: 0.9, want: 30 * time.Minute},
		{name: "two thirds", policy: rotation.Policy{Fraction: 2.0 / 3, Jitter: -1}, r: 0, want: 40 * time.Minute},
		{name: "clamped to expiry", policy: rotation.Policy{Fraction: 0.95, Jitter: 0.2}, r: 1, want: time.Hour},
		{name: "bad fraction falls back", policy: rotation.Policy{Fraction: 3, Jitter: -1}, r: 0, want: 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.RenewAt(v, tt.r).Sub(t0)
			if got != tt.want {
				t.Fatalf("RenewAt = %v after NotBefore, want %v", got, tt.want)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	b := rotation.Backoff{Initial: time.Second, Max: time.Minute}
	tests := []struct {
		name      string
		attempt   int
		remaining time.Duration
		r         float64
		want      time.Duration
	}{
		{name: "first retry, low jitter", attempt: 1, r: 0, want: 500 * time.Millisecond},
		{name: "first retry, high jitter", attempt: 1, r: 0.999999999, want: time.Second},
		{name: "doubles", attempt: 4, r: 0, want: 4 * time.Second},
		{name: "capped at max", attempt: 20, r: 0, want: 30 * time.Second},
		{name: "huge attempt does not overflow", attempt: 1 << 20, r: 0, want: 30 * time.Second},
		{name: "capped by half the remaining life", attempt: 20, remaining: 10 * time.Second, r: 0, want: 2500 * time.Millisecond},
		{name: "never below initial", attempt: 20, remaining: time.Second, r: 0, want: 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := b.Delay(tt.attempt, tt.remaining, tt.r).Round(time.Millisecond)
			if got != tt.want {
				t.Fatalf("Delay = %v, want %v", got, tt.want)
			}
		})
	}
}
