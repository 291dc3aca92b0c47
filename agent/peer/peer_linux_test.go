package peer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/peer"
	"github.com/sworn-id/sworn/internal/testutil"
)

const childEnv = "SWORN_TEST_PEER_DIAL"

// TestMain lets the test binary act as a short-lived caller: it connects,
// says one byte and exits, leaving the connection's PID free for reuse.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		runRole(role)
	}
	if addr := os.Getenv(childEnv); addr != "" {
		c, err := net.Dial("unix", addr)
		if err != nil {
			os.Exit(2)
		}
		_, _ = c.Write([]byte{1})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func listen(t *testing.T) (*peer.Listener, string) {
	t.Helper()
	dir := testutil.ShortTempDir(t, "peer")
	path := filepath.Join(dir, "s.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l := peer.Listen(ul)
	t.Cleanup(func() { l.Close() })
	return l, path
}

func TestCallerOfLiveConnectionAndUnixSelectors(t *testing.T) {
	l, path := listen(t)
	client, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.(*peer.Conn)
	caller := conn.Caller()
	if int(caller.PID) != os.Getpid() || int(caller.UID) != os.Geteuid() || int(caller.GID) != os.Getegid() {
		t.Fatalf("caller %+v, want this process (%d/%d/%d)", caller, os.Getpid(), os.Geteuid(), os.Getegid())
	}
	if err := conn.Verify(); err != nil {
		t.Fatalf("Verify on a live caller: %v", err)
	}

	sel, err := (&attest.Unix{}).Attest(context.Background(), caller)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	got := attest.NewSet(sel...).Strings()
	for _, want := range []string{
		"unix:uid:" + strconv.Itoa(os.Geteuid()),
		"unix:gid:" + strconv.Itoa(os.Getegid()),
		"unix:path:" + exe,
		"unix:sha256:" + hex.EncodeToString(sum[:]),
	} {
		if !slices.Contains(got, want) {
			t.Errorf("selectors %v lack %q", got, want)
		}
	}
	if os.Geteuid() == 0 && !slices.Contains(got, "unix:user:root") {
		t.Errorf("selectors %v lack unix:user:root", got)
	}
}

func TestVerifyFailsOnceTheCallerExited(t *testing.T) {
	l, path := listen(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	conn := c.(*peer.Conn)
	if int(conn.Caller().PID) != cmd.Process.Pid {
		t.Fatalf("caller PID %d, want the child's %d", conn.Caller().PID, cmd.Process.Pid)
	}
	if err := conn.Verify(); !errors.Is(err, peer.ErrGone) {
		t.Fatalf("Verify after the caller exited: %v, want ErrGone", err)
	}
	t.Logf("SO_PEERPIDFD in use: %v", l.PeerPIDFD())
}

func TestGroupsAreTheKernelsSnapshotAtConnect(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a child with other credentials")
	}
	l, path := listen(t)
	dir := filepath.Dir(path)
	for p, mode := range map[string]os.FileMode{dir: 0o755, path: 0o777} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "child.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{4242, 4343}}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = cmd.Wait()
	got := c.(*peer.Conn).Caller()
	if got.UID != 65534 || got.GID != 65534 || !slices.Equal(got.Groups, []uint32{4242, 4343}) {
		t.Fatalf("caller %+v, want uid/gid 65534 and groups [4242 4343]", got)
	}
}
