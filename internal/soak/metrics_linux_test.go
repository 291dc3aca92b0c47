package soak

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sample is one reading of the agent process.
type sample struct {
	at         time.Time // when the scrape was sent
	done       time.Time // when its answer was read: the counters are from in between
	run        int       // which start of the agent (counters restart at 0 with it)
	goroutines int       // go_goroutines from /metrics
	fds        int       // entries in /proc/<pid>/fd
	rss        int64     // VmRSS from /proc/<pid>/status, bytes
	caCalls    float64   // SVIDs issued plus issuances failed: every CA sign call
}

// read samples the agent as it runs now.
func (a *agentProc) read() (sample, error) {
	pid, run := a.current()
	s := sample{at: time.Now(), run: run}
	resp, err := http.Get("http://" + a.healthAddr + "/metrics")
	if err != nil {
		return s, fmt.Errorf("soak: metrics: %w", err)
	}
	defer resp.Body.Close()
	m, err := parseMetrics(resp.Body)
	if err != nil {
		return s, err
	}
	s.done = time.Now()
	s.goroutines = int(m["go_goroutines"])
	s.caCalls = m["sworn_svids_issued_total"] + m["sworn_svid_issue_failures_total"]
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, fmt.Errorf("soak: %w", err)
	}
	s.fds = len(fds)
	if s.rss, err = vmRSS(pid); err != nil {
		return s, err
	}
	if p, r := a.current(); p != pid || r != run {
		return s, fmt.Errorf("soak: the agent restarted while sampled")
	}
	return s, nil
}

// parseMetrics sums each metric's samples over their labels, from the
// Prometheus text format.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("soak: metrics line %q has no value", line)
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("soak: metrics line %q: %v", line, err)
		}
		out[name] += v
	}
	return out, sc.Err()
}

func vmRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("soak: %w", err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("soak: no VmRSS in /proc/%d/status", pid)
}

// sampler reads the agent once a second until stopped; a reading that
// fails (the agent is down for its restart) is skipped.
type sampler struct {
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	done    chan struct{}
}

func startSampler(a *agentProc) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if r, err := a.read(); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, r)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// finish stops the sampler and returns what it read.
func (s *sampler) finish() []sample {
	close(s.stop)
	<-s.done
	return s.samples
}

// rateWindow is the least window CA calls are counted over, from one
// scrape's sending to a later one's answer (so a slow scrape only widens
// the window it is held to); rateSlack covers a call that took its token
// just before the window and finished in it.
const (
	rateWindow = 3 * time.Second
	rateSlack  = 500 * time.Millisecond
)

// checkRate returns the peak CA call rate over any rateWindow within one
// agent run, and every window whose calls exceed rate·(window+slack)+burst.
func checkRate(samples []sample, rate float64, burst int) (peak float64, over []string) {
	for i, a := range samples {
		for _, b := range samples[i+1:] {
			if b.run != a.run {
				break
			}
			if b.at.Sub(a.at) < rateWindow {
				continue
			}
			dt := b.done.Sub(a.at)
			calls := b.caCalls - a.caCalls
			peak = max(peak, calls/dt.Seconds())
			if allowed := rate*(dt+rateSlack).Seconds() + float64(burst); calls > allowed {
				over = append(over, fmt.Sprintf("%.0f CA calls in %v from %s (run %d); the bound allows %.1f",
					calls, dt.Round(time.Millisecond), a.at.Format("15:04:05.000"), a.run, allowed))
			}
			break
		}
	}
	return peak, over
}
