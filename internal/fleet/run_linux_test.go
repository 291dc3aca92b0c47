package fleet

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/ca/vault"
)

// result is what one mode's run measured.
type result struct {
	mode               string
	p                  params
	loadStart, loadEnd string

	served            time.Duration // watches started → every watch holds its M SVIDs
	steady            window        // full runs only
	steadyLoad        string
	rssIdle, rssHeld  []int64 // before the watches, and holding M identities
	bundleMedian      time.Duration
	bundleMax         time.Duration // rotate → every watch's bundle holds the new issuer
	moveFirst         time.Duration // activate → first SVID of the new issuer
	noticedMax        time.Duration // activate → the last agent's first SVID of it
	moveLast          time.Duration // activate → every SVID of the new issuer
	agentSpreadMedian time.Duration // per agent: its first to its last re-issued SVID, as the watch saw them
	agentSpreadMax    time.Duration
	issueSpreadMedian time.Duration // the same by when they were signed (NotAfter − TTL, to the second)
	issueSpreadMax    time.Duration
	lagMedian, lagMax time.Duration // signed → seen by the watch, over every re-issued SVID
	storm             window        // activate → every SVID moved, plus a second
	stormSeries       []int         // leaf signs per second over the storm
	all               window        // the whole run
	intermediates     []*x509.Certificate
	failures          []string
	warnings          map[string]int // agents' WARN lines by message, for the report
	unverified        []string
}

// runMode runs one mode's fleet from start to the re-issued end.
func runMode(t *testing.T, p params, bin, base, mode string) *result {
	t.Helper()
	r := &result{mode: mode, p: p, loadStart: loadavg()}
	f := start(t, p, bin, base, mode)
	r.rssIdle = f.rss()
	ctx, cancel := context.WithCancel(context.Background())
	began := time.Now()
	for i, a := range f.agents {
		if p.full {
			// Workloads start at any time in a fleet: spread the agents'
			// first issuances over one renewal period, so their renewals
			// are spread too and the steady state is steady.
			time.Sleep(time.Until(began.Add(time.Duration(i) * p.period() / time.Duration(p.agents))))
		}
		f.ws = append(f.ws, startWatch(ctx, a, p.ttl))
	}
	t.Cleanup(func() { // before the agents stop: their end is no stream error
		cancel()
		for _, w := range f.ws {
			<-w.done
		}
	})
	bound := time.Duration(p.identities/p.rate)*time.Second + time.Duration(p.agents*p.identities)*10*time.Millisecond + 2*time.Minute
	r.served = waitAll(t, f.ws, bound, "received all their SVIDs", (*watch).served)
	if p.full {
		r.steady, r.steadyLoad = f.steadyState(time.Now())
	}
	r.rssHeld = f.rss()
	f.rollout(r)
	r.failures = f.failures()
	r.warnings = f.warnings()
	r.all = f.ctr.all()
	r.loadEnd = loadavg()
	return r
}

// vaultBackdate is the not_before_duration of the role `sworn vault setup`
// writes: Vault backdates every SVID's NotBefore by it.
const vaultBackdate = 30 * time.Second

// period is how long after issue an SVID is renewed, on average: half of
// NotBefore→NotAfter (rotation.DefaultPolicy), which Vault's backdating
// lengthens.
func (p params) period() time.Duration { return (p.ttl+vaultBackdate)/2 - vaultBackdate }

// steadyState counts Vault's requests over one renewal period from served,
// once the first issuances (spread over the period before) are renewed:
// one renewal per identity, on average, in sign mode.
func (f *fleet) steadyState(served time.Time) (window, string) {
	from := f.ctr.second(served) + 1
	time.Sleep(time.Until(served.Add(f.p.period() + time.Second)))
	return f.ctr.window(from, f.ctr.second(time.Now())), loadavg()
}

func (f *fleet) rss() []int64 {
	out := make([]int64, 0, len(f.agents))
	for _, a := range f.agents {
		n, err := a.rss()
		if err != nil {
			f.t.Fatalf("agent %d: %v", a.idx, err)
		}
		out = append(out, n)
	}
	return out
}

// rollout runs `sworn ca rotate`, waits until every watch's bundle holds
// the new issuer, runs `sworn ca activate` and waits until every SVID of
// every watch chains to it.
func (f *fleet) rollout(r *result) {
	iss := f.rotate()
	rotated := time.Now()
	for _, w := range f.ws {
		w.follow(iss.Anchor.SubjectKeyId)
	}
	waitAll(f.t, f.ws, 2*f.p.bundleRefresh+time.Minute, "received a bundle with the new issuer", (*watch).hasBundle)
	var bundle []time.Duration
	for _, w := range f.ws {
		bundle = append(bundle, w.bundleAt.Sub(rotated))
	}
	r.bundleMedian, r.bundleMax = medianMax(bundle)

	swornCmd(f.t, f.bin, f.srv, "ca", "activate", iss.ID, "--backend", "vault", "--min-age", "0s")
	activated := time.Now()
	bound := 2*f.p.bundleRefresh + time.Duration(f.p.identities/f.p.rate)*3*time.Second + 2*time.Minute
	if !f.p.full {
		// Before any SVID is due for renewal (at 0.4 TTL at the earliest):
		// only the re-issue the activation forces can have moved them.
		bound = min(bound, f.p.ttl*4/10-10*time.Second)
	}
	waitAll(f.t, f.ws, bound, "received SVIDs of the new issuer for every identity", (*watch).allMoved)
	done := time.Now()
	r.storm = f.ctr.window(f.ctr.second(activated), f.ctr.second(done)+2)
	r.stormSeries = f.ctr.series(kindSign, f.ctr.second(activated), f.ctr.second(done)+2)
	f.moveFigures(r, activated)
	for _, w := range f.ws {
		r.unverified = append(r.unverified, w.verifyAgainst(iss.Anchor)...)
		if f.mode == string(vault.ModeIntermediate) {
			r.intermediates = append(r.intermediates, w.intermediates()...)
		}
	}
}

// moveFigures sets when SVIDs moved to the new issuer, from activated.
func (f *fleet) moveFigures(r *result, activated time.Time) {
	var spreads, issueSpreads, lags []time.Duration
	r.moveFirst = -1
	for _, w := range f.ws {
		w.mu.Lock()
		first, last := span(w.movedAt)
		ifirst, ilast := span(w.issuedAt)
		for id, at := range w.movedAt {
			lags = append(lags, at.Sub(w.issuedAt[id]))
		}
		w.mu.Unlock()
		spreads, issueSpreads = append(spreads, last.Sub(first)), append(issueSpreads, ilast.Sub(ifirst))
		if d := first.Sub(activated); r.moveFirst < 0 || d < r.moveFirst {
			r.moveFirst = d
		}
		r.moveLast = max(r.moveLast, last.Sub(activated))
		r.noticedMax = max(r.noticedMax, first.Sub(activated))
	}
	r.agentSpreadMedian, r.agentSpreadMax = medianMax(spreads)
	r.issueSpreadMedian, r.issueSpreadMax = medianMax(issueSpreads)
	r.lagMedian, r.lagMax = medianMax(lags)
}

// span is the earliest and latest time in m.
func span[K comparable](m map[K]time.Time) (first, last time.Time) {
	for _, at := range m {
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	return first, last
}

// failures lists every stream error, bad update, non-2xx Vault answer and
// agent error log line.
func (f *fleet) failures() []string {
	var out []string
	for _, w := range f.ws {
		w.mu.Lock()
		for _, e := range w.streamErrs {
			out = append(out, fmt.Sprintf("agent %d: stream error: %s", w.agent.idx, e))
		}
		for _, v := range w.violations {
			out = append(out, fmt.Sprintf("agent %d: %s", w.agent.idx, v))
		}
		w.mu.Unlock()
		for _, l := range w.agent.logLines("ERROR") {
			out = append(out, fmt.Sprintf("agent %d logged: %s", w.agent.idx, l))
		}
	}
	for _, b := range f.ctr.badAnswers() {
		out = append(out, "Vault answered "+b)
	}
	return out
}

// warnings counts the agents' WARN log lines by message.
func (f *fleet) warnings() map[string]int {
	out := map[string]int{}
	for _, a := range f.agents {
		for _, l := range a.logLines("WARN") {
			msg := l
			if _, rest, ok := strings.Cut(l, "msg="); ok {
				msg = rest[:min(len(rest), 90)]
			}
			out[msg]++
		}
	}
	return out
}

func medianMax(ds []time.Duration) (median, maximum time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}
