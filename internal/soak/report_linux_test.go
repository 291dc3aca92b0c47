package soak

import (
	"fmt"
	"time"
)

// Growth bounds between the baseline of an agent run (every watcher
// served) and its last sample. A leak of one goroutine, fd or allocation
// per renewal grows without bound over a soak (the short one sees 20 to 40
// issuances per agent run, the long one thousands); these allow the noise
// of renewals in flight and of the Go heap (clean runs move by a goroutine
// or two, no fd and a few MiB).
const (
	goroutineSlack = 10 // plus a twentieth of the baseline
	fdSlack        = 5
	rssSlack       = 16 << 20 // bytes, or a quarter of the baseline if more
)

// minReplacedLife is the least remaining life an SVID may have when its
// replacement reaches the watcher: renewal is due at half the TTL, so a
// sixth leaves the rate bound and jitter a third of the TTL to catch up.
const minReplacedLife = svidTTL / 6

// growth returns what grew beyond its bound from base to end.
func growth(name string, base, end sample) []string {
	var out []string
	if lim := base.goroutines + goroutineSlack + base.goroutines/20; end.goroutines > lim {
		out = append(out, fmt.Sprintf("%s: goroutines grew from %d to %d (bound %d)", name, base.goroutines, end.goroutines, lim))
	}
	if lim := base.fds + fdSlack; end.fds > lim {
		out = append(out, fmt.Sprintf("%s: open fds grew from %d to %d (bound %d)", name, base.fds, end.fds, lim))
	}
	if lim := base.rss + max(rssSlack, base.rss/4); end.rss > lim {
		out = append(out, fmt.Sprintf("%s: RSS grew from %s to %s (bound %s)", name, mib(base.rss), mib(end.rss), mib(lim)))
	}
	return out
}

// report fails the test on every broken bound and logs the figures.
func (r *run) report(idle sample, samples []sample) {
	t := r.t
	fig := r.f.figures()
	for i, v := range fig.violations {
		if i == 20 {
			t.Errorf("... and %d more violations", len(fig.violations)-i)
			break
		}
		t.Errorf("watcher violation: %s", v)
	}
	for _, g := range append(growth("agent run 1", r.base1, r.end1), growth("agent run 2", r.base2, r.end2)...) {
		t.Error(g)
	}
	peak, over := checkRate(samples, float64(r.rate), r.rate)
	for _, o := range over {
		t.Errorf("CA call rate above rotation.max_per_second=%d (burst %d): %s", r.rate, r.rate, o)
	}
	if fig.renewalsMin == 0 {
		t.Errorf("a watcher saw no renewal (a new SVID from the same CA) in the %v after the activation", r.p.duration*8/10)
	}
	if fig.replacements > 0 && fig.worstReplaced < minReplacedLife {
		t.Errorf("an SVID was replaced with only %v of its %v left; renewals must run with at least %v left", fig.worstReplaced, svidTTL, minReplacedLife)
	}
	n := r.p.watchers
	t.Logf("soak: %v, %d watchers under %d uids, each its own identity; svid.ttl %v, rotation.max_per_second %d", r.p.duration, n, n, svidTTL, r.rate)
	t.Logf("updates per watcher: min %d, median %d, max %d (%d in all; %d SVID replacements, at least %d renewals per watcher; %d watch errors, from the kill)",
		fig.updatesMin, fig.updatesMedian, fig.updatesMax, fig.updatesTotal, fig.replacements, fig.renewalsMin, fig.watchErrors)
	t.Logf("worst remaining life of an SVID when replaced: %v of %v", fig.worstReplaced.Round(time.Millisecond), svidTTL)
	t.Logf("agent RSS: %s idle, %s at the end: %s per identity", mib(idle.rss), mib(r.end2.rss), mib((r.end2.rss-idle.rss)/int64(n)))
	for _, s := range []struct {
		name      string
		base, end sample
	}{{"run 1 (before the kill)", r.base1, r.end1}, {"run 2 (after the restart)", r.base2, r.end2}} {
		t.Logf("%s: goroutines %d -> %d, fds %d -> %d, RSS %s -> %s", s.name,
			s.base.goroutines, s.end.goroutines, s.base.fds, s.end.fds, mib(s.base.rss), mib(s.end.rss))
	}
	t.Logf("CA calls: peak %.2f/s over %v windows; bound %d/s (+%d burst); %d samples", peak, rateWindow, r.rate, r.rate, len(samples))
}
