package soak

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/internal/testutil"
)

// svidTTL is the shortest the config allows: renewals every ~30s.
const svidTTL = registry.MinTTL

// maxPerSecond is the rotation.max_per_second the soak gives an agent
// serving n identities: n renewals per half TTL need n/30 a second, so a
// tenth of n leaves three times that, while the re-issue of every SVID at
// CA activation (n at once) exceeds it over any window unless the limiter
// holds. The cache's limiter lets a burst of max(1, int(rate)) through.
func maxPerSecond(n int) int { return max(2, n/10) }

var trustDomain = spiffeid.RequireTrustDomainFromString("soak.test")

// agentProc is the sworn agent running as a separate process.
type agentProc struct {
	t          *testing.T
	bin        string // the sworn binary
	config     string
	socket     string
	admin      string
	healthAddr string
	logPath    string

	mu     sync.Mutex // cmd and runs, read by the sampler
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	runs   int           // how many times it was started
}

// current returns the running agent's pid and which start it is.
func (a *agentProc) current() (pid, run int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil || a.cmd.Process == nil {
		return 0, a.runs
	}
	return a.cmd.Process.Pid, a.runs
}

// buildBinaries builds sworn and the watcher (without -race: they are the
// programs under load, not under the race detector) into dir.
func buildBinaries(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/sworn", "./internal/soak/watcher")
	cmd.Dir = testutil.Root(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// uidID is the SPIFFE ID the rules give uid.
func uidID(t *testing.T, uid int) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromSegments(trustDomain, "uid", strconv.Itoa(uid))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newAgent writes the agent's config under base: the embedded CA, the
// shortest SVID and JWT TTLs, a known CA call rate bound, and one rule per
// uid giving it spiffe://soak.test/uid/<uid>.
func newAgent(t *testing.T, base, bin string, uids []int, rate int) *agentProc {
	t.Helper()
	a := &agentProc{
		t: t, bin: bin, config: filepath.Join(base, "agent.yaml"),
		socket: filepath.Join(base, "run", "workload.sock"), admin: filepath.Join(base, "run", "admin.sock"),
		healthAddr: testutil.FreeAddr(t), logPath: filepath.Join(base, "agent.log"),
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trust_domain: %s\nsocket_path: %s\nadmin_socket_path: %s\ndata_dir: %s\nhealth_addr: %s\n",
		trustDomain, a.socket, a.admin, filepath.Join(base, "data"), a.healthAddr)
	fmt.Fprintf(&b, "svid:\n  ttl: %s\n  jwt_ttl: 30s\nrotation:\n  max_per_second: %d\nca:\n  type: local\nrules:\n", svidTTL, rate)
	for _, uid := range uids {
		fmt.Fprintf(&b, "  - spiffe_id: %s\n    selectors: [\"unix:uid:%d\"]\n", uidID(t, uid), uid)
	}
	if err := os.WriteFile(a.config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.stop)
	return a
}

// start runs the agent and waits until /ready answers 200.
func (a *agentProc) start() {
	a.t.Helper()
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		a.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(a.bin, "agent", "--config", a.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	a.mu.Lock()
	a.runs++
	fmt.Fprintf(logf, "=== soak: agent run %d\n", a.runs)
	err = cmd.Start()
	a.cmd = cmd
	a.mu.Unlock()
	if err != nil {
		a.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	a.exited = exited
	testutil.EventuallyWithin(a.t, 30*time.Second, "the agent's /ready to answer 200", func() bool {
		select {
		case <-exited:
			a.t.Fatalf("agent exited at start: %v%s", cmd.ProcessState, a.logTail())
		default:
		}
		resp, err := http.Get("http://" + a.healthAddr + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// kill9 kills the agent with SIGKILL and waits until it is gone.
func (a *agentProc) kill9() {
	a.t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		a.t.Fatal(err)
	}
	<-a.exited
}

// hup sends SIGHUP (reload the config) and waits for the reload's log line.
func (a *agentProc) hup() {
	a.t.Helper()
	before := strings.Count(a.log(), "rules reloaded")
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		a.t.Fatal(err)
	}
	testutil.Eventually(a.t, "the agent to log \"rules reloaded\" after SIGHUP", func() bool {
		return strings.Count(a.log(), "rules reloaded") > before
	})
}

// sworn runs an operator command against the agent's admin socket.
func (a *agentProc) sworn(args ...string) string {
	a.t.Helper()
	args = append(args, "--admin-socket", a.admin)
	out, err := exec.Command(a.bin, args...).CombinedOutput()
	if err != nil {
		a.t.Fatalf("sworn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (a *agentProc) stop() {
	if a.cmd == nil {
		return
	}
	select {
	case <-a.exited:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(15 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

func (a *agentProc) log() string {
	data, _ := os.ReadFile(a.logPath)
	return string(data)
}

// logTail is the agent log's last 40 lines, for a failure message.
func (a *agentProc) logTail() string {
	lines := strings.Split(strings.TrimSpace(a.log()), "\n")
	return "\nagent log (last lines):\n" + strings.Join(lines[max(0, len(lines)-40):], "\n")
}
