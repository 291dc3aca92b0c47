package cli

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// fakeClock stands in for time.Now and time.After in keepJWTSVID: every
// wait the loop asks for is handed to the test, which fires it and moves
// now on by that much.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan fakeWait
}

type fakeWait struct {
	d    time.Duration
	fire chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	// Buffered so a loop that asks for a wait after the test stopped
	// reading (at cleanup) does not block before it sees ctx end.
	return &fakeClock{now: now, waits: make(chan fakeWait, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	w := fakeWait{d: d, fire: make(chan time.Time, 1)}
	c.waits <- w
	return w.fire
}

// next returns the wait the loop asks for next; a loop that never asks
// (it spins, or it is stuck) fails the test.
func (c *fakeClock) next(t *testing.T, what string) fakeWait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(testutil.WaitTimeout):
		t.Fatalf("keepJWTSVID never waited %s", what)
		return fakeWait{}
	}
}

func (c *fakeClock) set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

func (c *fakeClock) fire(w fakeWait) {
	c.mu.Lock()
	c.now = c.now.Add(w.d)
	now := c.now
	c.mu.Unlock()
	w.fire <- now
}

// jwtFile reads the JWT-SVID in path and the file's inode.
func jwtFile(t *testing.T, path string) (*jwtsvid.SVID, uint64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := jwtsvid.ParseInsecure(string(data), []string{"test"})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return svid, fi.Sys().(*syscall.Stat_t).Ino
}

// TestKeepJWTSVIDRefreshesAtHalfLifeAndBacksOff drives keepJWTSVID with a
// fake clock against a real agent: it waits half the token's remaining
// life, replaces the file by rename when that wait ends, and while the
// agent is gone retries after 1s, 2s, 4s … capped at 1m, never spinning;
// a success starts the backoff over.
func TestKeepJWTSVIDRefreshesAtHalfLifeAndBacksOff(t *testing.T) {
	cfg := agenttest.Config(t)
	a := agenttest.Start(t, cfg)
	dir := t.TempDir()
	target := jwtTarget{audience: "test", file: "a.jwt"}
	plan := &writePlan{dir: dir, jwtSVIDMode: 0o600, jwtSVIDs: []jwtTarget{target}}
	clock := newFakeClock(time.Now())
	out := &testutil.Buffer{}
	w := &svidWriter{plan: plan, client: workloadapi.WithAddr(a.Addr()), out: out,
		status: newWriteStatus(plan, clock.Now), now: clock.Now, after: clock.After}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.keepJWTSVID(ctx, target) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("keepJWTSVID: %v", err)
		}
	})
	path := filepath.Join(dir, target.file)

	halfLife := func(what string) (fakeWait, uint64) {
		t.Helper()
		wt := clock.next(t, what)
		svid, ino := jwtFile(t, path)
		if want := svid.Expiry.Sub(clock.Now()) / 2; wt.d != want {
			t.Fatalf("%s: waited %v; want half the token's remaining life, %v (expires %v, now %v)",
				what, wt.d, want, svid.Expiry, clock.Now())
		}
		return wt, ino
	}
	first, ino1 := halfLife("after the first write")
	clock.fire(first)
	second, ino2 := halfLife("after the refresh")
	if ino2 == ino1 {
		t.Fatalf("the refresh rewrote %s in place (inode %d); want a new file renamed over it", path, ino1)
	}

	// The agent goes away: each failed fetch waits twice as long as the
	// last, up to a minute.
	if err := a.Stop(t); err != nil {
		t.Fatal(err)
	}
	wait := second
	for _, want := range []time.Duration{1, 2, 4, 8, 16, 32, 60, 60} {
		clock.fire(wait)
		wait = clock.next(t, "after a failed fetch")
		if wait.d != want*time.Second {
			t.Fatalf("after a failed fetch waited %v; want %v\n%s", wait.d, want*time.Second, out.String())
		}
	}
	if _, ino := jwtFile(t, path); ino != ino2 {
		t.Fatalf("%s changed while every fetch failed", path)
	}

	// Back again: the next fetch succeeds, and the backoff starts over.
	// The fake clock ran minutes ahead through the backoff; the agent
	// stamps tokens with the real time, so the clock goes back to it.
	a = agenttest.Start(t, cfg)
	clock.set(time.Now())
	clock.fire(wait)
	back, _ := halfLife("after the agent came back")
	if err := a.Stop(t); err != nil {
		t.Fatal(err)
	}
	clock.fire(back)
	if wait = clock.next(t, "after a failure that followed a success"); wait.d != time.Second {
		t.Fatalf("the first failure after a success waited %v; want the backoff to start over at 1s", wait.d)
	}
}
