package agent_test

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
	"strconv"
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
	"google.golang.org/protobuf/proto"

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

// metric returns the value of the first sample of /metrics whose name and
// labels start with prefix, or 0 if there is none.
func metric(t *testing.T, addr, prefix string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) && len(line) > len(prefix) && (line[len(prefix)] == ' ' || line[len(prefix)] == '{' || prefix[len(prefix)-1] == '}') {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

func ready(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
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

	// One more from the same uid is closed at once.
	extra, err := dialAs(sock, 65534)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	requireClosedByAgent(t, extra, "a connection over the per-uid limit")
	if got := metric(t, health, `sworn_workload_api_connections_refused_total{reason="uid_limit"}`); got != 1 {
		t.Fatalf("refusals counted: %v, want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fetchAs(ctx, t, sock, 65534); status.Code(err) != codes.Unavailable {
		t.Fatalf("a gRPC client of the uid at its limit: %v, want Unavailable", err)
	}
	if code, body := ready(t, health); code != http.StatusServiceUnavailable || !strings.Contains(body, "uid 65534") {
		t.Fatalf("/ready while uid 65534 is refused: %d %q, want 503 naming the uid", code, body)
	}

	// Another uid is still served, and so is the admin socket.
	if out := childFetch(t, filepath.Dir(cfg.SocketPath), "unix://"+cfg.SocketPath, 65533); !strings.Contains(out, "code: OK") {
		t.Fatalf("uid 65533 while uid 65534 is at its limit: %q, want code: OK", out)
	}
	if _, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(ta.Addr())); err != nil {
		t.Fatalf("root while uid 65534 is at its limit: %v", err)
	}
	if out := runCLI(t, "status", "--admin-socket", cfg.AdminSocketPath); !strings.Contains(out, "active") {
		t.Fatalf("admin status while uid 65534 is at its limit:\n%s", out)
	}

	// Fill the total with a second uid: now every uid is refused, the
	// admin socket still answers, and /ready says why.
	testutil.Eventually(t, "the finished fetches' connections to close", func() bool { return open() == perUID })
	for range total - perUID {
		attacker = append(attacker, idleConn(t, sock, 65533))
	}
	testutil.Eventually(t, "the second uid's connections to be held", func() bool { return open() == total })
	if err := fetchAs(ctx, t, sock, 0); status.Code(err) != codes.Unavailable {
		t.Fatalf("root while the total is reached: %v, want Unavailable", err)
	}
	if got := metric(t, health, `sworn_workload_api_connections_refused_total{reason="total_limit"}`); got < 1 {
		t.Fatalf("total-limit refusals counted: %v, want at least 1", got)
	}
	if code, body := ready(t, health); code != http.StatusServiceUnavailable || !strings.Contains(body, "new ones of every uid are refused") {
		t.Fatalf("/ready at the total limit: %d %q", code, body)
	}
	if out := runCLI(t, "status", "--admin-socket", cfg.AdminSocketPath); !strings.Contains(out, "active") {
		t.Fatalf("admin status at the total limit:\n%s", out)
	}

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

func TestStreamLimitPerUID(t *testing.T) {
	cfg := newConfig(t)
	cfg.Limits.MaxStreamsPerUID = 2
	ta := startAgent(t, cfg)
	client := rawClient(t, ta)
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true")), 20*time.Second)
	defer cancel()
	open := func() (context.CancelFunc, error) {
		sctx, scancel := context.WithCancel(ctx)
		stream, err := client.FetchX509SVID(sctx, &workload.X509SVIDRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		return scancel, err
	}
	first, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(); err != nil {
		t.Fatal(err)
	}
	_, err = open()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "limits.max_streams_per_uid") {
		t.Fatalf("a third stream of a uid allowed two: %v, want ResourceExhausted naming the limit", err)
	}
	// A unary call is a stream too.
	if _, err := client.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"db"}}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a unary call over the limit: %v, want ResourceExhausted", err)
	}
	first()
	testutil.Eventually(t, "a slot to be freed by the closed stream", func() bool {
		c, err := open()
		if err == nil {
			c()
		}
		return err == nil
	})
}

// A client that opens a FetchX509SVID stream and never reads it while its
// SVID rotates again and again: gRPC's flow control stops the agent from
// queuing more than a window for it, the blocked send is ended after
// limits.stream_send_timeout by closing the connection, and the stream's
// goroutine is freed.
func TestStreamThatNeverReadsIsBoundedAndEnded(t *testing.T) {
	const window = 64 << 10
	cfg := newConfig(t)
	cfg.HealthAddr = testutil.FreeAddr(t)
	cfg.Limits.StreamSendTimeout = time.Second
	ta := startAgent(t, cfg)
	health := cfg.HealthAddr

	// The client's transport reads the socket, but the stream's window
	// (64 KiB, fixed) is only given back as the application reads, which
	// it never does.
	conn, err := grpc.NewClient(ta.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true")), 2*time.Minute)
	defer cancel()
	stream, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv() // the stream is open and served; from here on nothing is read
	if err != nil {
		t.Fatal(err)
	}

	rotations := 0
	deadline := time.Now().Add(90 * time.Second)
	for metric(t, health, "sworn_workload_api_stalled_connections_closed_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d rotations the agent still had not ended the stream that reads nothing", rotations)
		}
		runCLI(t, "rotate", "svids", "--all", "--admin-socket", cfg.AdminSocketPath)
		rotations++
	}

	// What reached the client is at most its window: the agent did not
	// queue one message per rotation.
	received, bytes := 1, proto.Size(first)
	for {
		resp, err := stream.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("the stalled stream ended with %v, want Unavailable (connection closed)", err)
			}
			break
		}
		received++
		bytes += proto.Size(resp)
	}
	t.Logf("%d rotations; the client got %d messages, %d bytes", rotations, received, bytes)
	if bytes > 2*window || received >= rotations {
		t.Fatalf("the client got %d messages (%d bytes) for %d rotations; want at most about a window (%d bytes)", received, bytes, rotations, window)
	}
	testutil.Eventually(t, "the stalled stream's handler to return", func() bool {
		return metric(t, health, `sworn_workload_api_open_streams{method="FetchX509SVID"}`) == 0
	})
	// The agent serves others as before.
	if _, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(ta.Addr())); err != nil {
		t.Fatalf("a new client after the stalled one was cut off: %v", err)
	}
}

func TestJWTSVIDAudienceBounds(t *testing.T) {
	ta := jwtAgent(t)
	raw := rawClient(t, ta)
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true")), 20*time.Second)
	defer cancel()
	many := func(n, size int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%0*d", size, i)
		}
		return out
	}
	tests := []struct {
		name     string
		audience []string
		want     codes.Code
		message  string
	}{
		{name: "at every limit", audience: many(32, 500), want: codes.OK},
		{name: "too many", audience: many(33, 10), want: codes.InvalidArgument, message: "33 audiences given; at most 32 are allowed"},
		{name: "one too long", audience: []string{"db", strings.Repeat("a", 2049)}, want: codes.InvalidArgument, message: "audience[1] is 2049 bytes long; at most 2048 are allowed"},
		{name: "too large in all", audience: many(9, 2000), want: codes.InvalidArgument, message: "audiences total 18000 bytes; at most 16384 are allowed"},
		{name: "empty", audience: []string{"db", ""}, want: codes.InvalidArgument, message: "audience[1] is empty"},
		// The review's request: refused by the message size bound before
		// any of it is looked at.
		{name: "3.9 MB", audience: []string{strings.Repeat("a", 3900<<10)}, want: codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := raw.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: tt.audience})
			if status.Code(err) != tt.want || (tt.message != "" && status.Convert(err).Message() != tt.message) {
				t.Fatalf("FetchJWTSVID: %v, want %v %q", err, tt.want, tt.message)
			}
			if tt.want == codes.OK && len(resp.Svids) != 2 {
				t.Fatalf("got %d tokens, want one per identity", len(resp.Svids))
			}
		})
	}
}
