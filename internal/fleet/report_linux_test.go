package fleet

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/ca/vault"
)

// limiterSlack is how much later than the agent's rate limiter let a call
// go the proxy may count it (key generation, the CSR, scheduling on a
// loaded machine), so a one-second bucket of arrivals holds calls the
// limiter passed over 1 s + limiterSlack.
const limiterSlack = time.Second

// signLimit is the most leaf signs the agents' limiters let through in any
// one-second bucket: per agent the burst (max(1, rate)) plus rate for
// 1 s + limiterSlack.
func (p params) signLimit() int {
	perAgent := float64(max(1, p.rate)) + float64(p.rate)*(1+limiterSlack.Seconds())
	return p.agents * int(perAgent)
}

// check fails the test on what the package doc says it fails on.
func (r *result) check(t *testing.T) {
	t.Helper()
	if len(r.failures) > 0 {
		t.Errorf("%d failures, want 0; the first:\n%s", len(r.failures), strings.Join(r.failures[:min(20, len(r.failures))], "\n"))
	}
	if len(r.unverified) > 0 {
		t.Errorf("%d SVIDs held at the end do not chain to the new issuer alone; the first:\n%s", len(r.unverified), strings.Join(r.unverified[:min(10, len(r.unverified))], "\n"))
	}
	if r.all.non2xx > 0 {
		t.Errorf("Vault answered %d requests with a non-2xx status", r.all.non2xx)
	}
	switch r.mode {
	case string(vault.ModeSign):
		if peak := r.all.peak[kindSign]; peak > r.p.signLimit() {
			t.Errorf("Vault saw %d leaf signs in one second (second %d of the run), more than the agents' rate limiters allow: %d (%d agents × (burst %d + %d/s × %v))",
				peak, r.all.peakAt[kindSign], r.p.signLimit(), r.p.agents, max(1, r.p.rate), r.p.rate, time.Second+limiterSlack)
		}
	case string(vault.ModeIntermediate):
		if n := r.all.total[kindSign]; n > 0 {
			t.Errorf("in intermediate mode Vault signed %d leaves; agents must sign them with their intermediate", n)
		}
		for _, c := range r.intermediates {
			if !slices.Equal(c.PermittedURIDomains, []string{trustDomain.Name()}) || c.MaxPathLen != 0 || !c.MaxPathLenZero {
				t.Errorf("intermediate %s: permitted URI domains %v, max path length %d (zero %v); want [%s] and 0",
					c.SerialNumber.Text(16), c.PermittedURIDomains, c.MaxPathLen, c.MaxPathLenZero, trustDomain.Name())
			}
		}
	}
}

// print logs the figures (docs/benchmarks.md reports them).
func (r *result) print(t *testing.T) {
	t.Helper()
	p := r.p
	var b strings.Builder
	rate := fmt.Sprint(p.rate)
	if p.full && r.mode == string(vault.ModeIntermediate) {
		rate = "unset (no cap: the default in intermediate mode)"
	}
	fmt.Fprintf(&b, "fleet %s mode: %d agents × %d identities (%d SVIDs), svid.ttl %v, rotation.max_per_second %s, bundle_refresh %v; load %s at the start, %s at the end\n",
		r.mode, p.agents, p.identities, p.agents*p.identities, p.ttl, rate, p.bundleRefresh, r.loadStart, r.loadEnd)
	fmt.Fprintf(&b, "  every watch served all its SVIDs %v after the watches started\n", r.served.Round(time.Millisecond))
	if p.full {
		nm := float64(p.agents * p.identities)
		expected, backdated := nm/(p.ttl/2).Seconds(), nm/p.period().Seconds()
		fmt.Fprintf(&b, "  steady state over %d s (load %s at its end): Vault %.1f req/s: sign %.1f/s (sign mode expects N·M/(TTL/2) = %.1f/s, or N·M/((TTL+30s)/2 − 30s) = %.1f/s with Vault's 30s backdating; intermediate mode 0), intermediate %.2f/s, read %.2f/s, auth %.2f/s, other %.2f/s; peak sign %d/s\n",
			r.steady.seconds, r.steadyLoad, total(r.steady), r.steady.rate(kindSign), expected, backdated, r.steady.rate(kindIntermediate),
			r.steady.rate(kindRead), r.steady.rate(kindAuth), r.steady.rate(kindOther), r.steady.peak[kindSign])
	}
	idleMean, idleMax := meanMax(r.rssIdle)
	heldMean, heldMax := meanMax(r.rssHeld)
	fmt.Fprintf(&b, "  agent RSS: idle mean %s max %s; holding %d identities mean %s max %s: %.1f KiB per identity (mean held − mean idle)/M\n",
		mib(idleMean), mib(idleMax), p.identities, mib(heldMean), mib(heldMax), float64(heldMean-idleMean)/1024/float64(p.identities))
	fmt.Fprintf(&b, "  ca rotate → new issuer in every watch's bundle: median %v, max %v\n", r.bundleMedian.Round(time.Millisecond), r.bundleMax.Round(time.Millisecond))
	fmt.Fprintf(&b, "  ca activate → first SVID of the new issuer %v, on every agent %v, every SVID on every agent %v; per agent first→last re-issue median %v, max %v\n",
		r.moveFirst.Round(time.Millisecond), r.noticedMax.Round(time.Millisecond), r.moveLast.Round(time.Millisecond),
		r.agentSpreadMedian.Round(time.Millisecond), r.agentSpreadMax.Round(time.Millisecond))
	fmt.Fprintf(&b, "  per agent first→last re-issue by signing time (NotAfter − TTL, to the second): median %v, max %v; signed → seen by the watch: median %v, max %v\n",
		r.issueSpreadMedian, r.issueSpreadMax, r.lagMedian.Round(time.Millisecond), r.lagMax.Round(time.Millisecond))
	bound := fmt.Sprintf("bound max_per_second × N = %d/s, limiter's one-second bound %d", p.rate*p.agents, p.signLimit())
	if p.full && r.mode == string(vault.ModeIntermediate) {
		bound = "no leaf reaches Vault"
	}
	fmt.Fprintf(&b, "  storm (%d s): Vault sign %d (peak %d/s at +%d s; %s), intermediate %d (peak %d/s), read %d, auth %d, other %d\n",
		r.storm.seconds, r.storm.total[kindSign], r.storm.peak[kindSign], r.storm.peakAt[kindSign], bound,
		r.storm.total[kindIntermediate], r.storm.peak[kindIntermediate], r.storm.total[kindRead], r.storm.total[kindAuth], r.storm.total[kindOther])
	fmt.Fprintf(&b, "  storm signs per second: %v\n", r.stormSeries)
	fmt.Fprintf(&b, "  whole run: Vault sign %d (peak %d/s), intermediate %d, read %d, auth %d, other %d, non-2xx %d; failures %d\n",
		r.all.total[kindSign], r.all.peak[kindSign], r.all.total[kindIntermediate], r.all.total[kindRead], r.all.total[kindAuth],
		r.all.total[kindOther], r.all.non2xx, len(r.failures))
	for msg, n := range r.warnings {
		fmt.Fprintf(&b, "  agent warnings: %d × %s\n", n, msg)
	}
	if len(r.intermediates) > 0 {
		c := r.intermediates[0]
		fmt.Fprintf(&b, "  intermediates held: %d; permitted URI domains %v, max path length %d, lifetime %v\n",
			len(r.intermediates), c.PermittedURIDomains, c.MaxPathLen, c.NotAfter.Sub(c.NotBefore).Round(time.Minute))
	}
	t.Log("\n" + b.String())
}

func total(w window) float64 {
	var n int
	for _, v := range w.total {
		n += v
	}
	return float64(n) / float64(max(1, w.seconds))
}

func meanMax(xs []int64) (mean, maximum int64) {
	if len(xs) == 0 {
		return 0, 0
	}
	var sum int64
	for _, x := range xs {
		sum += x
		maximum = max(maximum, x)
	}
	return sum / int64(len(xs)), maximum
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
