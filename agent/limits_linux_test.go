package agent_test

// The connection-limit test connects as other uids by changing the
// effective uid of one thread (setresuid on Linux changes only the calling
// thread), which only Linux offers; so it, and its helpers, build on Linux
// only.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// dialAs connects to the Unix socket at path as uid: the connecting thread
// alone takes uid as its effective uid (a raw setresuid changes only the
// calling thread), so the agent's SO_PEERCRED reads uid, as it would for a
// process of that user. Needs root.
func dialAs(path string, uid uint32) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread stays locked (and so is discarded with this goroutine)
		// unless its uid is back to root.
		runtime.LockOSThread()
		keep := ^uintptr(0) // -1: leave unchanged
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, keep, uintptr(uid), keep); e != 0 {
			done <- result{err: fmt.Errorf("setresuid(-1, %d, -1): %w", uid, e)}
			return
		}
		c, err := net.Dial("unix", path)
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, keep, 0, keep); e != 0 {
			if c != nil {
				c.Close()
			}
			done <- result{err: fmt.Errorf("setresuid back to root: %w", e)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

// idleConn opens a connection as uid and sends the HTTP/2 preface and
// settings, as a client would, then nothing more: the review's idle
// connection, held by gRPC for as long as the client likes.
func idleConn(t *testing.T, path string, uid uint32) net.Conn {
	t.Helper()
	c, err := dialAs(path, uid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	preface := "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + "\x00\x00\x00\x04\x00\x00\x00\x00\x00" // an empty SETTINGS frame
	if _, err := io.WriteString(c, preface); err != nil {
		t.Fatalf("write preface as uid %d: %v", uid, err)
	}
	return c
}

// requireClosedByAgent reads from c until the agent closes it.
func requireClosedByAgent(t *testing.T, c net.Conn, why string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the agent did not close the connection", why)
	}
}

// fetchAs fetches an X.509-SVID over a connection made as uid.
func fetchAs(ctx context.Context, t *testing.T, path string, uid uint32) error {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return dialAs(path, uid) }))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs("workload.spiffe.io", "true"))
	stream, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

// callContext bounds one call only: a budget shared by several calls
// (one of which starts a child process) ran out on a loaded machine.
func callContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.WaitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as other uids (setresuid on the connecting thread)")
	}
}

// The review's attack, scaled down: one unprivileged uid opens idle
// connections until it is refused; the agent goes on serving other uids
// and the admin socket, says so on /ready, logs and counts it, and
// recovers when the connections close.
func TestConnectionLimitsPerUIDAndInTotal(t *testing.T) {
	requireRoot(t)
	// The total is twice the per-uid cap, the least that keeps one uid
	// from holding more than half (config.Limits.UIDConnectionCap).
	const perUID, total = 4, 8
	cfg := newConfig(t)
	cfg.HealthAddr = testutil.FreeAddr(t)
	cfg.Limits.MaxConnectionsPerUID = perUID
	cfg.Limits.MaxConnections = total
	if err := os.Chmod(filepath.Dir(cfg.SocketPath), 0o755); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, cfg)
	sock, health := cfg.SocketPath, cfg.HealthAddr
	open := func() float64 { return metric(t, health, "sworn_workload_api_connections") }

	if code, body := ready(t, health); code != http.StatusOK {
		t.Fatalf("/ready before any limit is reached: %d %s", code, body)
	}
	var attacker []net.Conn
	for range perUID {
		attacker = append(attacker, idleConn(t, sock, 65534))
	}
	testutil.Eventually(t, "the attacker's connections to be held", func() bool { return open() == perUID })
	requireUIDLimitEnforced(t, ta)

	// Fill the total with a second uid: now every uid is refused, the
	// admin socket still answers, and /ready says why.
	testutil.Eventually(t, "the finished fetches' connections to close", func() bool { return open() == perUID })
	for range total - perUID {
		attacker = append(attacker, idleConn(t, sock, 65533))
	}
	testutil.Eventually(t, "the second uid's connections to be held", func() bool { return open() == total })
	requireTotalLimitEnforced(t, ta)

	// Recovery: the attacker lets go and everyone is served again.
	for _, c := range attacker {
		c.Close()
	}
	testutil.Eventually(t, "every attacker connection to be released", func() bool { return open() == 0 })
	if code, body := ready(t, health); code != http.StatusOK {
		t.Fatalf("/ready after the connections closed: %d %s", code, body)
	}
	if out := childFetch(t, filepath.Dir(cfg.SocketPath), "unix://"+cfg.SocketPath, 65534); !strings.Contains(out, "code: OK") {
		t.Fatalf("uid 65534 after closing its connections: %q, want code: OK", out)
	}
}

// requireUIDLimitEnforced checks, with uid 65534 at its connection limit,
// that one more of its connections is closed at once and counted, its gRPC
// client gets Unavailable, /ready names it, and another uid, root and the
// admin socket are still served.
func requireUIDLimitEnforced(t *testing.T, ta *testAgent) {
	t.Helper()
	cfg := ta.Config
	extra, err := dialAs(cfg.SocketPath, 65534)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	requireClosedByAgent(t, extra, "a connection over the per-uid limit")
	if got := metric(t, cfg.HealthAddr, `sworn_workload_api_connections_refused_total{reason="uid_limit"}`); got != 1 {
		t.Fatalf("refusals counted: %v, want 1", got)
	}
	if err := fetchAs(callContext(t), t, cfg.SocketPath, 65534); status.Code(err) != codes.Unavailable {
		t.Fatalf("a gRPC client of the uid at its limit: %v, want Unavailable", err)
	}
	if code, body := ready(t, cfg.HealthAddr); code != http.StatusServiceUnavailable || !strings.Contains(body, "uid 65534") {
		t.Fatalf("/ready while uid 65534 is refused: %d %q, want 503 naming the uid", code, body)
	}
	if out := childFetch(t, filepath.Dir(cfg.SocketPath), "unix://"+cfg.SocketPath, 65533); !strings.Contains(out, "code: OK") {
		t.Fatalf("uid 65533 while uid 65534 is at its limit: %q, want code: OK", out)
	}
	if _, err := workloadapi.FetchX509SVID(callContext(t), workloadapi.WithAddr(ta.Addr())); err != nil {
		t.Fatalf("root while uid 65534 is at its limit: %v", err)
	}
	if out := clitest.Run(t, "status", "--admin-socket", cfg.AdminSocketPath); !strings.Contains(out, "active") {
		t.Fatalf("admin status while uid 65534 is at its limit:\n%s", out)
	}
}

// requireTotalLimitEnforced checks, with the total reached, that even root
// is refused and counted, /ready says every uid is refused, and the admin
// socket still answers.
func requireTotalLimitEnforced(t *testing.T, ta *testAgent) {
	t.Helper()
	cfg := ta.Config
	if err := fetchAs(callContext(t), t, cfg.SocketPath, 0); status.Code(err) != codes.Unavailable {
		t.Fatalf("root while the total is reached: %v, want Unavailable", err)
	}
	if got := metric(t, cfg.HealthAddr, `sworn_workload_api_connections_refused_total{reason="total_limit"}`); got < 1 {
		t.Fatalf("total-limit refusals counted: %v, want at least 1", got)
	}
	if code, body := ready(t, cfg.HealthAddr); code != http.StatusServiceUnavailable || !strings.Contains(body, "new ones of every uid are refused") {
		t.Fatalf("/ready at the total limit: %d %q", code, body)
	}
	if out := clitest.Run(t, "status", "--admin-socket", cfg.AdminSocketPath); !strings.Contains(out, "active") {
		t.Fatalf("admin status at the total limit:\n%s", out)
	}
}
