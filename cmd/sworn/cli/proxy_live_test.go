package cli_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/cmd/sworn/cli"
	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/trust"
)

// startProxy runs `sworn args...` in-process until the test ends, and
// returns what it writes to stderr.
func startProxy(t *testing.T, args ...string) *testutil.Buffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.Buffer{}
	cmd := cli.NewCommand(ctx)
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sworn %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	testutil.Eventually(t, "sworn proxy serving", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("sworn %s exited: %v\n%s", strings.Join(args, " "), err, out)
		default:
		}
		return strings.Contains(out.String(), "sworn proxy serving")
	})
	return out
}

func statusOf(t *testing.T, addr string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/_status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("/_status: %v", err)
	}
	return resp.StatusCode, st
}

// TestProxyServerAndClientOverUnixSockets: `sworn proxy client` on a Unix
// socket dials `sworn proxy server`, which forwards to an app on a Unix
// socket; /_status names the SVID; a clean stop removes the sockets.
func TestProxyServerAndClientOverUnixSockets(t *testing.T) {
	a := agenttest.Start(t, agenttest.Config(t))
	self := spiffeid.RequireFromPathf(spiffeid.RequireTrustDomainFromString("example.org"), "/uid/%d", os.Geteuid()).String()
	dir := testutil.ShortTempDir(t, "pxc")
	testutil.UnixEcho(t, filepath.Join(dir, "app.sock"))
	serverAddr, status := testutil.FreeAddr(t), testutil.FreeAddr(t)
	startProxy(t, "proxy", "server", "--listen", serverAddr, "--target", "unix:"+filepath.Join(dir, "app.sock"),
		"--allow-uri-san", self, "--use-workload-api", "--use-workload-api-addr", a.Addr(), "--status", status)
	clientSock := filepath.Join(dir, "client.sock")
	startProxy(t, "proxy", "client", "--listen", "unix:"+clientSock, "--target", serverAddr, "--verify-uri", self,
		"--use-workload-api-addr", a.Addr())

	c, err := net.Dial("unix", clientSock)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "through both\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "through both\n" {
		t.Fatalf("client proxy -> server proxy -> app: %q, %v", got, err)
	}
	c.Close()
	if fi, err := os.Lstat(clientSock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("client socket: %v, %v; want mode 0660 (--socket-mode's default)", fi.Mode(), err)
	}

	code, st := statusOf(t, status)
	svid, err := a.Source(t).GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(st["svid_expires_at"]))
	if code != http.StatusOK || st["ok"] != true || st["ready"] != true || st["spiffe_id"] != self ||
		exp.Sub(svid.Certificates[0].NotAfter).Abs() > time.Hour {
		t.Fatalf("/_status: %d %v, want ok, ready, %s expiring about %v", code, st, self, svid.Certificates[0].NotAfter)
	}
}

// TestProxyLogsHandshakeFailuresAsJSON: with --log-format json a failed
// handshake is one JSON line on the command's stderr, and nothing reaches
// the standard logger.
func TestProxyLogsHandshakeFailuresAsJSON(t *testing.T) {
	var std testutil.Buffer
	log.SetOutput(&std)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	a := agenttest.Start(t, agenttest.Config(t))
	self := spiffeid.RequireFromPathf(spiffeid.RequireTrustDomainFromString("example.org"), "/uid/%d", os.Geteuid()).String()
	addr := testutil.FreeAddr(t)
	out := startProxy(t, "proxy", "--listen", addr, "--target", testutil.FreeAddr(t), "--allow", self,
		"--workload-api", a.Addr(), "--log-format", "json", "--status", testutil.FreeAddr(t))

	// A client with no certificate: the handshake fails on the server.
	conf := trust.ClientConfig(a.Source(t), trust.NewGuard(mustAllow(t, self)))
	conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
	if c, err := tls.Dial("tcp", addr, conf); err == nil {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1)) // TLS 1.3: the refusal arrives after the client's Finished
		c.Close()
		if err == nil {
			t.Fatal("a client without a certificate got a byte back")
		}
	}
	var line map[string]any
	testutil.Eventually(t, "a JSON \"connection refused\" line", func() bool {
		for _, l := range strings.Split(out.String(), "\n") {
			if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == "connection refused" {
				return true
			}
		}
		return false
	})
	if line["level"] != "INFO" || line["reason"] != "handshake" || !strings.Contains(fmt.Sprint(line["error"]), "tls:") {
		t.Fatalf("refusal line %v, want level INFO, reason handshake and the TLS error", line)
	}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Fatalf("a line that is not JSON under --log-format json: %q", l)
		}
	}
	if std.String() != "" {
		t.Fatalf("the standard logger got: %q", std.String())
	}
}

func mustAllow(t *testing.T, allow ...string) *trust.Policy {
	t.Helper()
	p, err := trust.NewPolicy(allow, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProxyLogsTheAgentGoingAway: when the agent stops, the Workload API
// client's error reaches the proxy's structured log (go-spiffe drops it
// unless given a logger).
func TestProxyLogsTheAgentGoingAway(t *testing.T) {
	a := agenttest.Start(t, agenttest.Config(t))
	self := spiffeid.RequireFromPathf(spiffeid.RequireTrustDomainFromString("example.org"), "/uid/%d", os.Geteuid()).String()
	out := startProxy(t, "proxy", "--listen", testutil.FreeAddr(t), "--target", testutil.FreeAddr(t), "--allow", self,
		"--workload-api", a.Addr(), "--log-format", "json")
	if err := a.Stop(t); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "a JSON error line from the Workload API client", func() bool {
		for _, l := range strings.Split(out.String(), "\n") {
			var line map[string]any
			if json.Unmarshal([]byte(l), &line) == nil && line["level"] == "ERROR" && line["component"] == "workloadapi" &&
				strings.HasPrefix(fmt.Sprint(line["msg"]), "Failed to watch the Workload API") {
				return true
			}
		}
		return false
	})
}
