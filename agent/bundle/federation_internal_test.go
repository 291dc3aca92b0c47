package bundle

import (
	"testing"
	"time"
)

// A peer's refresh hint steers how often the agent fetches; a hint of
// years would leave a rotated CA unseen, and a failed fetch is retried
// sooner but never in a loop.
func TestNextRefreshClampsThePeersHint(t *testing.T) {
	tests := []struct {
		name   string
		hint   time.Duration
		failed bool
		want   time.Duration
	}{
		{name: "hint kept", hint: 5 * time.Minute, want: 5 * time.Minute},
		{name: "hint of years", hint: 10 * 365 * 24 * time.Hour, want: MaxRefresh},
		{name: "overflowed hint", hint: -1, want: 5 * time.Minute},
		{name: "sub-second hint", hint: time.Millisecond, want: MinRefresh},
		{name: "after a failure", hint: 10 * 365 * 24 * time.Hour, failed: true, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &watcher{f: &Federation{}, failed: tt.failed}
			if got := w.NextRefresh(tt.hint); got != tt.want {
				t.Fatalf("NextRefresh(%v) = %v, want %v", tt.hint, got, tt.want)
			}
		})
	}
}
