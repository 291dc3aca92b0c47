package peer_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/peer"
	"github.com/sworn-id/sworn/internal/testutil"
)

// binaries writes copies of this test binary into a fresh directory that
// any user can enter, one per name, each with the name appended so that
// every copy has its own digest. It returns the paths and digests.
func binaries(t *testing.T, names ...string) (dir string, paths, sums map[string]string) {
	t.Helper()
	dir = testutil.ShortTempDir(t, "peer-bin")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	paths, sums = map[string]string{}, map[string]string{}
	for _, name := range names {
		content := append(bytes.Clone(self), []byte("\nsworn-test-binary:"+name)...)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o755); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		paths[name], sums[name] = p, hex.EncodeToString(sum[:])
	}
	return dir, paths, sums
}

// pipe returns both ends of a pipe, closed when the test ends.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// lineReader reads lines from a pipe, failing the test after 30s without
// one rather than hanging.
type lineReader struct {
	f *os.File
	r *bufio.Reader
}

func newLineReader(f *os.File) *lineReader { return &lineReader{f: f, r: bufio.NewReader(f)} }

func (l *lineReader) next(t *testing.T, what string) string {
	t.Helper()
	_ = l.f.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := l.r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v (read %q)", what, err, line)
	}
	return strings.TrimSuffix(line, "\n")
}

// attack starts an attacker process (see roles_test.go) and returns the
// control pipe (write "exec\n" to make it exec), the target's status
// lines, and the helper's stdin and stdout.
type attack struct {
	cmd    *exec.Cmd
	ctl    *os.File
	status *lineReader
	in     *os.File
	out    *lineReader
	stderr *bytes.Buffer
}

func startAttack(t *testing.T, bin string, env []string, cred *syscall.Credential) *attack {
	t.Helper()
	ctlR, ctlW := pipe(t)
	stR, stW := pipe(t)
	inR, inW := pipe(t)
	outR, outW := pipe(t)
	a := &attack{ctl: ctlW, status: newLineReader(stR), in: inW, out: newLineReader(outR), stderr: &bytes.Buffer{}}
	a.cmd = exec.Command(bin, "-test.run=^$")
	a.cmd.Env = append(append(os.Environ(), roleEnv+"=attacker"), env...)
	a.cmd.ExtraFiles = []*os.File{ctlR, stW}
	a.cmd.Stdin, a.cmd.Stdout, a.cmd.Stderr = inR, outW, a.stderr
	// Its own process group, so that the helper it starts ends with it.
	// Pdeathsig: if the test binary dies (a -timeout), so does the attacker.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*os.File{ctlR, stW, inR, outW} {
		f.Close()
	}
	t.Cleanup(func() {
		// EOF on its stdin ends the helper, on fd 3 the target.
		ctlW.Close()
		inW.Close()
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		_ = a.cmd.Wait()
		if t.Failed() {
			t.Logf("attacker's stderr:\n%s", a.stderr)
		}
	})
	return a
}

// TestConnectThenExecDoesNotPassTheTargetsIdentity plays the attack on a
// real agent: a process connects, hands the connection to a helper, then
// execs a binary that rules name by path and by digest. The helper, still
// on the connection, must not receive that binary's SVIDs; the binary
// itself, connecting anew, must.
func TestConnectThenExecDoesNotPassTheTargetsIdentity(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keep   bool   // the exec'ing process keeps its copy of the socket
		before string // what the helper gets before the exec
	}{
		{name: "socket kept across exec", keep: true, before: "ids: spiffe://example.org/attacker"},
		{name: "socket handed off", keep: false, before: "code: PermissionDenied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, bins, sums := binaries(t, "attacker", "target")
			cfg := agenttest.Config(t,
				config.Rule{SPIFFEID: "spiffe://example.org/attacker", Selectors: []string{"unix:path:" + bins["attacker"]}},
				config.Rule{SPIFFEID: "spiffe://example.org/target-by-path", Selectors: []string{"unix:path:" + bins["target"]}},
				config.Rule{SPIFFEID: "spiffe://example.org/target-by-sha256", Selectors: []string{"unix:sha256:" + sums["target"]}},
			)
			ta := agenttest.Start(t, cfg)
			keep := "0"
			if tc.keep {
				keep = "1"
			}
			a := startAttack(t, bins["attacker"], []string{
				"SWORN_TEST_SOCK=" + cfg.SocketPath, "SWORN_TEST_TARGET=" + bins["target"],
				"SWORN_TEST_HELPER=1", "SWORN_TEST_KEEP=" + keep, "SWORN_TEST_ADDR=" + ta.Addr(),
			}, nil)

			// The first call is answered before the exec, so the agent has
			// accepted the connection from the attacker's binary. The helper
			// is attested as the process that connected, and only while that
			// process still holds the connection itself.
			fmt.Fprintln(a.in, "fetch")
			if got := a.out.next(t, "helper's first fetch"); got != tc.before {
				t.Fatalf("before the exec the helper got %q, want %q", got, tc.before)
			}
			fmt.Fprintln(a.ctl, "exec")
			if got := a.status.next(t, "target start"); got != "up" {
				t.Fatalf("target said %q, want up", got)
			}
			// The target, connecting anew, is attested as itself.
			if got, want := a.status.next(t, "target's own fetch"), "ids: spiffe://example.org/target-by-path,spiffe://example.org/target-by-sha256"; got != want {
				t.Fatalf("target on its own connection got %q, want %q", got, want)
			}
			fmt.Fprintln(a.in, "fetch")
			got := a.out.next(t, "helper's second fetch")
			if strings.Contains(got, "target") {
				t.Fatalf("the helper received the exec'd binary's identity over the inherited connection: %s", got)
			}
			if got != "code: PermissionDenied" {
				t.Fatalf("after the exec the helper got %q, want code: PermissionDenied", got)
			}
		})
	}
}

// TestExecBeforeAcceptWithTheSocketHandedOff covers the window the
// executable check cannot see: the exec happens before the agent accepts,
// so the executable recorded at accept is already the target. If the
// exec'ing process gave up its end of the connection (close-on-exec, as Go
// and SOCK_CLOEXEC do) and only the helper holds it, Verify must refuse.
func TestExecBeforeAcceptWithTheSocketHandedOff(t *testing.T) {
	l, path := listen(t)
	_, bins, _ := binaries(t, "attacker", "target")
	a := startAttack(t, bins["attacker"], []string{
		"SWORN_TEST_SOCK=" + path, "SWORN_TEST_TARGET=" + bins["target"],
		"SWORN_TEST_HELPER=1", "SWORN_TEST_KEEP=0", "SWORN_TEST_EXEC_NOW=1",
	}, nil)
	if got := a.status.next(t, "target start"); got != "up" {
		t.Fatalf("target said %q, want up", got)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.(*peer.Conn)
	if int(conn.Caller().PID) != a.cmd.Process.Pid {
		t.Fatalf("caller PID %d, want the attacker's %d", conn.Caller().PID, a.cmd.Process.Pid)
	}
	if !l.SocketCheck() {
		t.Skip("the kernel does not answer unix sock_diag queries (CONFIG_UNIX_DIAG), so the socket check is off")
	}
	if err := conn.Verify(); !errors.Is(err, peer.ErrNotCaller) {
		t.Fatalf("Verify with the socket held only by the helper: %v, want ErrNotCaller", err)
	}
}

// TestSetuidExecBeforeAcceptIsRefused: an exec of a set-user-ID binary
// between connect and accept shows as effective credentials that differ
// from SO_PEERCRED's, so even a process that keeps its socket across the
// exec cannot pass the binary's path and digest off as its connection's.
func TestSetuidExecBeforeAcceptIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as uid 65534 and make a set-user-ID root binary")
	}
	l, path := listen(t)
	for p, mode := range map[string]os.FileMode{filepath.Dir(path): 0o755, path: 0o777} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	_, bins, _ := binaries(t, "attacker", "target")
	if err := os.Chmod(bins["target"], 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	a := startAttack(t, bins["attacker"], []string{
		"SWORN_TEST_SOCK=" + path, "SWORN_TEST_TARGET=" + bins["target"],
		"SWORN_TEST_KEEP=1", "SWORN_TEST_EXEC_NOW=1",
	}, &syscall.Credential{Uid: 65534, Gid: 65534})
	if got := a.status.next(t, "target start"); got != "up" {
		t.Fatalf("target said %q, want up", got)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.(*peer.Conn)
	if conn.Caller().UID != 65534 {
		t.Fatalf("caller uid %d, want 65534 (SO_PEERCRED at connect)", conn.Caller().UID)
	}
	if err := conn.Verify(); !errors.Is(err, peer.ErrNotCaller) {
		t.Fatalf("Verify after a set-user-ID exec before accept: %v, want ErrNotCaller", err)
	}
}
