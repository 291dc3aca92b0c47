package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/ca/vault"
)

// haEvents is an agent's log read as it is written: when each SVID was
// issued, when each renewal failed, each login to Vault and each time the
// agent saw its CA answer again. It is how the failover test sees what
// the agent did and when, from the agent's own clock.
type haEvents struct {
	mu      sync.Mutex
	issued  []haEvent // "issued X.509-SVID"
	failed  []haEvent // "SVID renewal failed"
	logins  []time.Time
	retried []string // "CA answers again", svids=n
	partial []byte
}

// haEvent is one log record about one identity.
type haEvent struct {
	at     time.Time
	id     string // SPIFFE ID
	reason string // new or renewal, for an issuance
}

var (
	logTime = regexp.MustCompile(`^time=(\S+) `)
	logID   = regexp.MustCompile(` (?:spiffe_id|key)="?(spiffe://[^|" ]+)`)
	logArg  = regexp.MustCompile(` (reason|svids)=(\S+)`)
)

// Write takes the agent's text log; slog writes one record a call, but a
// line split across calls is put back together.
func (e *haEvents) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.partial = append(e.partial, p...)
	for {
		i := strings.IndexByte(string(e.partial), '\n')
		if i < 0 {
			return len(p), nil
		}
		e.record(string(e.partial[:i]))
		e.partial = e.partial[i+1:]
	}
}

// record files one log line; e.mu is held.
func (e *haEvents) record(line string) {
	m := logTime.FindStringSubmatch(line)
	if m == nil {
		return
	}
	at, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		return
	}
	ev := haEvent{at: at}
	if m := logID.FindStringSubmatch(line); m != nil {
		ev.id = m[1]
	}
	args := map[string]string{}
	for _, m := range logArg.FindAllStringSubmatch(line, -1) {
		args[m[1]] = m[2]
	}
	switch {
	case strings.Contains(line, `msg="issued X.509-SVID"`):
		ev.reason = args["reason"]
		e.issued = append(e.issued, ev)
	case strings.Contains(line, `msg="SVID renewal failed`):
		e.failed = append(e.failed, ev)
	case strings.Contains(line, `msg="logged in to Vault"`):
		e.logins = append(e.logins, at)
	case strings.Contains(line, `msg="CA answers again`):
		e.retried = append(e.retried, args["svids"])
	}
}

// haWatcher is a go-spiffe X509Context watcher that checks what it is
// handed: every SVID unexpired at the moment it arrives, and no error on
// the stream while the test runs.
type haWatcher struct {
	mu       sync.Mutex
	stopping bool
	errs     []error
	expired  []string
	serial   map[string]string    // SPIFFE ID → serial last received
	changed  map[string]time.Time // SPIFFE ID → when a new serial last arrived
	first    map[string]string    // SPIFFE ID → serial first received
	ready    chan struct{}        // closed at the first update
	readyOne sync.Once
}

func (w *haWatcher) OnX509ContextUpdate(x *workloadapi.X509Context) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range x.SVIDs {
		id, leaf := s.ID.String(), s.Certificates[0]
		if !now.Before(leaf.NotAfter) {
			w.expired = append(w.expired, fmt.Sprintf("%s (serial %x) handed at %s, expired at %s", id, leaf.SerialNumber, now.Format(time.StampMilli), leaf.NotAfter.Format(time.StampMilli)))
		}
		serial := leaf.SerialNumber.Text(16)
		if _, ok := w.first[id]; !ok {
			w.first[id] = serial
		}
		if w.serial[id] != serial {
			w.serial[id], w.changed[id] = serial, now
		}
	}
	w.readyOne.Do(func() { close(w.ready) })
}

// OnX509ContextWatchError records an error on a stream that had already
// delivered SVIDs. One before the first update is the agent saying it has
// nothing to serve yet (the first issuance failed: Vault was electing a
// leader as the agent started, which a loaded machine can cause), and the
// client retries: that is the Workload API's contract, not a failover
// breaking a workload that holds SVIDs.
func (w *haWatcher) OnX509ContextWatchError(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.ready:
	default:
		return
	}
	if !w.stopping {
		w.errs = append(w.errs, fmt.Errorf("at %s: %w", time.Now().Format(time.StampMilli), err))
	}
}

// renewed counts the identities whose SVID has changed since the first,
// and those whose latest arrived after t.
func (w *haWatcher) renewed(t time.Time) (sinceFirst, after int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, s := range w.serial {
		if s != w.first[id] {
			sinceFirst++
		}
		if w.changed[id].After(t) {
			after++
		}
	}
	return sinceFirst, after
}

// haAgent is one agent of the failover test, its log and its watchers.
type haAgent struct {
	name     string
	ta       *testAgent
	log      *haEvents
	watchers []*haWatcher
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// startHAAgent runs an agent with n identities of ttl, all for this test's
// uid, on Vault as vc says, with watchers go-spiffe watchers on it.
func startHAAgent(t *testing.T, name string, vc vault.Config, n, watchers int, ttl time.Duration) *haAgent {
	t.Helper()
	var rules []config.Rule
	for i := range n {
		rules = append(rules, config.Rule{SPIFFEID: fmt.Sprintf("spiffe://example.org/%s/w%03d", name, i), TTL: ttl, Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Geteuid())}})
	}
	cfg := newConfig(t, rules...)
	vc.Mode, vc.Auth.Method = vault.ModeSign, vault.AuthAppRole
	cfg.CA = config.CA{Type: "vault", Vault: vc}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := &haAgent{name: name, log: &haEvents{}}
	a.ta = agenttest.StartLogging(t, cfg, a.log)
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	t.Cleanup(a.stop)
	for range watchers {
		w := &haWatcher{serial: map[string]string{}, changed: map[string]time.Time{}, first: map[string]string{}, ready: make(chan struct{})}
		a.watchers = append(a.watchers, w)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			_ = workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr(a.ta.Addr()))
		}()
	}
	for _, w := range a.watchers {
		select {
		case <-w.ready:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no first X509Context within 30s", name)
		}
	}
	return a
}

// stop ends the watchers (their errors from then on are the test's own
// doing) and waits for them.
func (a *haAgent) stop() {
	for _, w := range a.watchers {
		w.mu.Lock()
		w.stopping = true
		w.mu.Unlock()
	}
	a.cancel()
	a.wg.Wait()
}

// renewed is the fewest identities any of a's watchers has seen renewed
// since its first SVID, and since t.
func (a *haAgent) renewed(t time.Time) (sinceFirst, after int) {
	sinceFirst, after = -1, -1
	for _, w := range a.watchers {
		s, af := w.renewed(t)
		if sinceFirst < 0 || s < sinceFirst {
			sinceFirst = s
		}
		if after < 0 || af < after {
			after = af
		}
	}
	return sinceFirst, after
}

// approleCredentials returns the role ID `sworn vault setup
// --auth-method approle` created and a file holding a new secret ID for
// it, as an operator hands them to agents.
func approleCredentials(t *testing.T, root *api.Client) (roleID, secretIDFile string) {
	t.Helper()
	r, err := root.Logical().Read("auth/approle/role/" + vault.DefaultAuthRole + "/role-id")
	if err != nil || r == nil {
		t.Fatalf("read the approle role ID: %v", err)
	}
	s, err := root.Logical().Write("auth/approle/role/"+vault.DefaultAuthRole+"/secret-id", nil)
	if err != nil || s == nil {
		t.Fatalf("create an approle secret ID: %v", err)
	}
	secretIDFile = filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(secretIDFile, []byte(s.Data["secret_id"].(string)), 0o600); err != nil {
		t.Fatal(err)
	}
	return r.Data["role_id"].(string), secretIDFile
}
