package soak

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sworn-id/sworn/internal/testutil"
)

// params size the soak: SOAK_DURATION and SOAK_WATCHERS.
type params struct {
	duration time.Duration
	watchers int
}

func soakParams(t *testing.T) params {
	t.Helper()
	p := params{duration: minDuration, watchers: 20}
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < minDuration {
			t.Fatalf("SOAK_DURATION=%q: want a duration of %v or more", s, minDuration)
		}
		p.duration = d
	}
	if s := os.Getenv("SOAK_WATCHERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			t.Fatalf("SOAK_WATCHERS=%q: want 1 to 1000", s)
		}
		p.watchers = n
	}
	return p
}

// minDuration is the shortest soak, and the one make test runs: long
// enough that every SVID issued at the activation (a fifth in) reaches its
// renewal (at most six tenths of svidTTL after issue) before the end.
const minDuration = 75 * time.Second

// Bounds the soak holds the agent to.
const (
	firstUpdateBound = 30 * time.Second // a new watcher's first SVID, beyond n/rate
	publishBound     = 10 * time.Second // a published CA reaches every stream
	activateSlack    = 15 * time.Second // every SVID re-issued, beyond n/rate
	restartBound     = 30 * time.Second // every watcher has reconnected and been served
)

// TestSoak runs the agent and its watchers for SOAK_DURATION through a CA
// rotation and activation, SIGHUPs and a kill -9 with restart, and checks
// what package soak's doc says.
func TestSoak(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("soak: needs root to run its watchers under other uids")
	}
	if testing.Short() {
		t.Skip("soak: skipped in -short mode; make test runs the short soak, make soak the long one")
	}
	p := soakParams(t)
	rate := maxPerSecond(p.watchers)
	base := testutil.ShortTempDir(t, "soak")
	bin := filepath.Join(base, "bin")
	for _, dir := range []string{base, bin} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil { // others' watchers run from here
			t.Fatal(err)
		}
	}
	buildBinaries(t, bin)
	uids := make([]int, p.watchers)
	for i := range uids {
		uids[i] = 20000 + i
	}
	a := newAgent(t, base, filepath.Join(bin, "sworn"), uids, rate)
	a.start()
	idle := mustRead(t, a)
	smp := startSampler(a)
	f := startWatchers(t, filepath.Join(bin, "watcher"), a.socket, uids)
	f.waitAll(firstUpdateBound+perRate(p.watchers, rate), "received a first SVID", func(w *watcherState) bool { return w.updates > 0 })
	r := &run{t: t, a: a, f: f, p: p, rate: rate, start: time.Now()}
	r.script()
	samples := smp.finish()
	f.stop()
	r.report(idle, samples)
}

func perRate(n, rate int) time.Duration { return time.Duration(n) * time.Second / time.Duration(rate) }

func mustRead(t *testing.T, a *agentProc) sample {
	t.Helper()
	s, err := a.read()
	if err != nil {
		t.Fatalf("%v%s", err, a.logTail())
	}
	return s
}

// run is one soak in progress.
type run struct {
	t    *testing.T
	a    *agentProc
	f    *fleet
	p    params
	rate int

	start       time.Time
	base1, end1 sample // agent run 1: all watchers served, and just before the kill
	base2, end2 sample // agent run 2: all watchers served again, and the end
}

// at sleeps until the given fraction of the soak's duration has passed.
func (r *run) at(frac float64) {
	time.Sleep(time.Until(r.start.Add(time.Duration(frac * float64(r.p.duration)))))
}

// logEvent records an event of the timeline that began at began.
func (r *run) logEvent(began time.Time, format string, args ...any) {
	r.t.Logf("%6.1fs %s", began.Sub(r.start).Seconds(), fmt.Sprintf(format, args...)) // as it happens: a long soak shows progress with -v
}

func (r *run) hup() {
	began := time.Now()
	r.a.hup()
	r.logEvent(began, "SIGHUP: rules reloaded")
}

// script is the soak's timeline.
func (r *run) script() {
	r.base1 = mustRead(r.t, r.a)
	r.at(0.1)
	r.publish()
	r.at(0.15)
	r.hup()
	r.at(0.2)
	r.activate()
	r.at(0.4)
	r.end1 = mustRead(r.t, r.a)
	r.restart()
	r.at(0.55)
	r.hup()
	r.at(0.7)
	r.hup()
	r.at(1)
	r.end2 = mustRead(r.t, r.a)
}

// publish starts a CA rotation: every stream must be sent a bundle that
// holds the new CA as well as the old.
func (r *run) publish() {
	before := time.Now()
	out := r.a.sworn("rotate", "ca")
	took := r.f.waitAll(publishBound, "received the bundle with the published CA", func(w *watcherState) bool {
		return w.last.At.After(before) && w.last.Authorities >= 2
	})
	r.logEvent(before, "rotate ca: %s; every watcher had both CAs in %v", out, took.Round(time.Millisecond))
}

// activate makes the new CA sign: every watcher must be sent an SVID from
// it within the time the rate bound needs to re-issue them all, plus slack.
func (r *run) activate() {
	old := r.f.issuers()
	if len(old) != 1 {
		r.t.Fatalf("before activation the watchers hold SVIDs of %d issuers, want 1: %v", len(old), old)
	}
	before := time.Now()
	out := r.a.sworn("rotate", "ca", "--activate")
	took := r.f.waitAll(perRate(r.p.watchers, r.rate)+activateSlack, "received an SVID signed by the activated CA", func(w *watcherState) bool {
		_, isOld := old[w.last.Issuer]
		return w.last.At.After(before) && !isOld
	})
	if now := r.f.issuers(); len(now) != 1 {
		r.t.Fatalf("after activation the watchers hold SVIDs of %d issuers, want 1 (the new CA): %v", len(now), now)
	}
	r.logEvent(before, "rotate ca --activate: %s; every watcher re-issued in %v", out, took.Round(time.Millisecond))
}

// restart kills the agent with SIGKILL and starts it again on the same
// data dir: every watcher must reconnect (go-spiffe backs off 1s, 2s, ...)
// and be served by the new process.
func (r *run) restart() {
	r.a.kill9()
	killed := time.Now()
	r.a.start()
	ready := time.Since(killed)
	took := r.f.waitAll(restartBound, "received an update from the restarted agent", func(w *watcherState) bool {
		return w.last.At.After(killed)
	})
	r.logEvent(killed, "kill -9 and restart: ready after %v; every watcher served again %v after the kill", ready.Round(time.Millisecond), (ready + took).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // let the restart's re-issues settle before the baseline
	r.base2 = mustRead(r.t, r.a)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
