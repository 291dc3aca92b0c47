package fleet

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

var trustDomain = spiffeid.RequireTrustDomainFromString("fleet.test")

// buildSworn builds the sworn binary (without -race: it is the program
// under load, not under the race detector) into dir, once for the fleet.
func buildSworn(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/sworn")
	cmd.Dir = testutil.Root(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "sworn")
}

// swornCmd runs the sworn CLI as an operator against Vault directly (not
// through the counter: only agents' requests are counted).
func swornCmd(t *testing.T, bin string, srv *vaulttest.Server, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+vaulttest.RootToken)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sworn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// approle is what an agent logs in to Vault with.
type approle struct{ roleID, secretIDFile string }

// newSecretID makes a secret ID of `sworn vault setup`'s AppRole for one
// agent, in a 0600 file under dir.
func newSecretID(t *testing.T, srv *vaulttest.Server, roleID, dir string) approle {
	t.Helper()
	s, err := srv.Client.Logical().Write("auth/approle/role/sworn-agent/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "secret-id")
	if err := os.WriteFile(f, []byte(s.Data["secret_id"].(string)), 0o600); err != nil {
		t.Fatal(err)
	}
	return approle{roleID: roleID, secretIDFile: f}
}

func readRoleID(t *testing.T, srv *vaulttest.Server) string {
	t.Helper()
	s, err := srv.Client.Logical().Read("auth/approle/role/sworn-agent/role-id")
	if err != nil || s == nil {
		t.Fatalf("read role-id: %v", err)
	}
	return s.Data["role_id"].(string)
}

// agentProc is one sworn agent process.
type agentProc struct {
	t       *testing.T
	idx     int
	bin     string
	ids     []spiffeid.ID // the identities its rules give the test process
	socket  string
	config  string
	body    string // the config but its health_addr
	health  string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// agentSpec is what every agent of a fleet shares.
type agentSpec struct {
	bin           string
	vaultAddr     string // the counter's
	mode          string
	ttl           time.Duration
	rate          int // rotation.max_per_second; 0 leaves the agent's default
	bundleRefresh time.Duration
	identities    int
}

// identity is the SPIFFE ID rule i of agent a gives.
func identity(t *testing.T, a, i int) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromSegments(trustDomain, "node", strconv.Itoa(a), "w", strconv.Itoa(i))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newAgent writes agent idx's config under base and starts it.
func newAgent(t *testing.T, base string, idx int, s agentSpec, auth approle) *agentProc {
	t.Helper()
	dir := filepath.Join(base, "a"+strconv.Itoa(idx))
	a := &agentProc{t: t, idx: idx, bin: s.bin, socket: filepath.Join(dir, "w.sock"),
		config: filepath.Join(dir, "agent.yaml"), logPath: filepath.Join(dir, "agent.log")}
	var b strings.Builder
	fmt.Fprintf(&b, "trust_domain: %s\nsocket_path: %s\nadmin_socket_path: %s\ndata_dir: %s\n",
		trustDomain, a.socket, filepath.Join(dir, "admin.sock"), filepath.Join(dir, "data"))
	fmt.Fprintf(&b, "svid:\n  ttl: %s\n", s.ttl)
	if s.rate > 0 { // else the agent's default: a cap for Vault's sign mode, none for intermediate
		fmt.Fprintf(&b, "rotation:\n  max_per_second: %d\n", s.rate)
	}
	fmt.Fprintf(&b, "ca:\n  type: vault\n  vault:\n    address: %s\n    mode: %s\n    bundle_refresh: %s\n", s.vaultAddr, s.mode, s.bundleRefresh)
	fmt.Fprintf(&b, "    auth:\n      method: approle\n      role_id: %s\n      secret_id_file: %s\nrules:\n", auth.roleID, auth.secretIDFile)
	for i := range s.identities {
		id := identity(t, idx, i)
		a.ids = append(a.ids, id)
		fmt.Fprintf(&b, "  - spiffe_id: %s\n    selectors: [\"unix:uid:%d\"]\n", id, os.Getuid())
	}
	a.body = b.String()
	a.start()
	t.Cleanup(a.stop)
	return a
}

// start runs the agent on a free health port.
func (a *agentProc) start() {
	a.t.Helper()
	a.health = testutil.FreeAddr(a.t)
	if err := os.WriteFile(a.config, []byte("health_addr: "+a.health+"\n"+a.body), 0o600); err != nil {
		a.t.Fatal(err)
	}
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		a.t.Fatal(err)
	}
	defer logf.Close()
	a.cmd = exec.Command(a.bin, "agent", "--config", a.config)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	exited, cmd := make(chan struct{}), a.cmd
	a.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
}

// waitReady waits until /ready answers 200.
func (a *agentProc) waitReady(bound time.Duration) {
	a.t.Helper()
	tries := 0
	testutil.EventuallyWithin(a.t, bound, fmt.Sprintf("agent %d's /ready to answer 200", a.idx), func() bool {
		select {
		case <-a.exited:
			// FreeAddr's port can be taken (say as another connection's
			// source port) before the agent binds it: try another.
			if tries++; tries < 5 && strings.Contains(a.logTail(), a.health+": bind: address already in use") {
				a.start()
				return false
			}
			a.t.Fatalf("agent %d exited at start: %v%s", a.idx, a.cmd.ProcessState, a.logTail())
		default:
		}
		resp, err := http.Get("http://" + a.health + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (a *agentProc) stop() {
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

// rss is the agent's resident set (VmRSS) in bytes.
func (a *agentProc) rss() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", a.cmd.Process.Pid)
}

// logLines returns the agent's log lines at level (ERROR, WARN).
func (a *agentProc) logLines(level string) []string {
	data, _ := os.ReadFile(a.logPath)
	var out []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.Contains(line, "level="+level) {
			out = append(out, line)
		}
	}
	return out
}

func (a *agentProc) logTail() string {
	data, _ := os.ReadFile(a.logPath)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return "\nagent log (last lines):\n" + strings.Join(lines[max(0, len(lines)-30):], "\n")
}
