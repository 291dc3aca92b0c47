package mtls_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/internal/testutil"
)

// TestExamplePair builds the example server and client and runs them
// against a real agent that tells them apart by executable path.
func TestExamplePair(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	bin := t.TempDir()
	for _, name := range []string{"server", "client"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), "./"+name).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	a := agenttest.Start(t, agenttest.Config(t,
		config.Rule{SPIFFEID: "spiffe://example.org/example/server", Selectors: []string{"unix:path:" + filepath.Join(bin, "server")}},
		config.Rule{SPIFFEID: "spiffe://example.org/example/client", Selectors: []string{"unix:path:" + filepath.Join(bin, "client")}},
	))
	env := append(os.Environ(), "SPIFFE_ENDPOINT_SOCKET="+a.Addr())

	addr := testutil.FreeAddr(t)
	server := exec.Command(filepath.Join(bin, "server"), "-listen", addr, "-allow", "spiffe://example.org/example/client")
	server.Env = env
	var serverLog testutil.Buffer // exec's copying goroutine writes it while the loop below may read it
	server.Stderr = &serverLog
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = server.Process.Kill()
		_ = server.Wait()
	})

	call := func(allow string) (string, error) {
		c := exec.Command(filepath.Join(bin, "client"), "-url", "https://"+addr+"/", "-allow", allow)
		c.Env = env
		out, err := c.CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := call("spiffe://example.org/example/server")
		if err == nil {
			if out != "hello spiffe://example.org/example/client\n" {
				t.Fatalf("client printed %q", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client never got through: %v\n%s\nserver: %s", err, out, serverLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := call("spiffe://example.org/someone/else"); err == nil {
		t.Fatalf("the client accepted a server it does not allow: %q", out)
	}
}
