package soak

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sworn-id/sworn/internal/testutil"
)

// watcherState is what the test knows of one watcher from its events.
type watcherState struct {
	uid         int
	updates     int
	last        Event // the last update
	watchErrors int
	replaced    []time.Duration // remaining life of each SVID when replaced
	renewals    int             // replacements by the same issuer
	violations  []string
}

// fleet is the watcher processes, one per uid.
type fleet struct {
	t    *testing.T
	mu   sync.Mutex
	ws   []*watcherState
	cmds []*exec.Cmd
	ins  []io.WriteCloser
	wg   sync.WaitGroup // the stdout readers
	done bool           // stop was called: exits are expected
}

// startWatchers runs bin under each uid against the agent's socket.
func startWatchers(t *testing.T, bin, socket string, uids []int) *fleet {
	t.Helper()
	f := &fleet{t: t}
	for _, uid := range uids {
		cmd := exec.Command(bin, "-addr", "unix://"+socket, "-id", uidID(t, uid).String())
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)},
			Pdeathsig:  syscall.SIGKILL,
		}
		stderr := &testutil.Buffer{}
		cmd.Stderr = stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("watcher as uid %d: %v", uid, err)
		}
		w := &watcherState{uid: uid}
		f.ws, f.cmds, f.ins = append(f.ws, w), append(f.cmds, cmd), append(f.ins, in)
		f.wg.Add(1)
		go f.read(w, out, stderr)
	}
	t.Cleanup(f.stop)
	return f
}

// read records w's events until its stdout closes.
func (f *fleet) read(w *watcherState, out io.Reader, stderr *testutil.Buffer) {
	defer f.wg.Done()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var ev Event
		err := json.Unmarshal(sc.Bytes(), &ev)
		f.mu.Lock()
		switch {
		case err != nil:
			w.violations = append(w.violations, fmt.Sprintf("unreadable event %q: %v", sc.Text(), err))
		case ev.Kind == "update":
			w.updates++
			if ev.Replaced != 0 {
				w.replaced = append(w.replaced, ev.Replaced)
				if ev.Issuer == w.last.Issuer {
					w.renewals++
				}
			}
			w.last = ev
		case ev.Kind == "watch_error":
			w.watchErrors++
		default:
			w.violations = append(w.violations, ev.At.Format("15:04:05.000")+": "+ev.Msg)
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		w.violations = append(w.violations, "watcher exited early: "+stderr.String())
	}
}

// waitAll waits up to bound for every watcher to satisfy ok, and fails
// naming those that did not.
func (f *fleet) waitAll(bound time.Duration, what string, ok func(*watcherState) bool) time.Duration {
	f.t.Helper()
	start := time.Now()
	for {
		f.mu.Lock()
		var lagging []int
		for _, w := range f.ws {
			if !ok(w) {
				lagging = append(lagging, w.uid)
			}
		}
		f.mu.Unlock()
		if len(lagging) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > bound {
			f.t.Fatalf("after %v, %d of %d watchers had not %s; uids %v", bound, len(lagging), len(f.ws), what, lagging[:min(10, len(lagging))])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// issuers returns the set of issuers of the watchers' last updates.
func (f *fleet) issuers() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, w := range f.ws {
		out[w.last.Issuer]++
	}
	return out
}

// stop ends every watcher: stdin closes, and SIGKILL after 10 s.
func (f *fleet) stop() {
	f.mu.Lock()
	if f.done {
		f.mu.Unlock()
		return
	}
	f.done = true
	f.mu.Unlock()
	for _, in := range f.ins {
		in.Close()
	}
	timer := time.AfterFunc(10*time.Second, func() {
		for _, c := range f.cmds {
			_ = c.Process.Kill()
		}
	})
	defer timer.Stop()
	f.wg.Wait()
	for _, c := range f.cmds {
		_ = c.Wait()
	}
}

// figures are what the watchers saw over the soak.
type figures struct {
	updatesMin, updatesMedian, updatesMax, updatesTotal int
	replacements                                        int
	renewalsMin                                         int           // the fewest renewals a watcher saw
	worstReplaced                                       time.Duration // least remaining life of an SVID when replaced
	watchErrors                                         int
	violations                                          []string
}

func (f *fleet) figures() figures {
	f.mu.Lock()
	defer f.mu.Unlock()
	var fig figures
	var counts []int
	fig.worstReplaced = -1
	fig.renewalsMin = -1
	for _, w := range f.ws {
		if fig.renewalsMin < 0 || w.renewals < fig.renewalsMin {
			fig.renewalsMin = w.renewals
		}
		counts = append(counts, w.updates)
		fig.updatesTotal += w.updates
		fig.watchErrors += w.watchErrors
		for _, r := range w.replaced {
			fig.replacements++
			if fig.worstReplaced < 0 || r < fig.worstReplaced {
				fig.worstReplaced = r
			}
		}
		for _, v := range w.violations {
			fig.violations = append(fig.violations, fmt.Sprintf("uid %d: %s", w.uid, v))
		}
	}
	slices.Sort(counts)
	fig.updatesMin, fig.updatesMedian, fig.updatesMax = counts[0], counts[len(counts)/2], counts[len(counts)-1]
	return fig
}
