package agent_test

import (
	"bytes"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// lockedBuffer is a bytes.Buffer the standard logger may write from any
// goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A failed TLS handshake on the bundle endpoint is a structured log line
// of the agent's, not a line on the standard logger's stderr that
// --log-format json would not cover.
func TestBundleEndpointHandshakeErrorsGoToTheStructuredLog(t *testing.T) {
	var std lockedBuffer
	log.SetOutput(&std)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	listen := testutil.FreeAddr(t)
	cfg := domainConfig(t, "example.org", "a")
	federate(cfg, listen, "https_spiffe")
	var agentLog testutil.Buffer
	agenttest.StartLogging(t, validated(t, cfg), &agentLog)

	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) // plain HTTP to a TLS port
	c.Close()
	testutil.Eventually(t, "the handshake error in the agent's log", func() bool {
		return strings.Contains(agentLog.String(), "TLS handshake error") && strings.Contains(agentLog.String(), "component=bundle-endpoint")
	})
	if got := std.String(); got != "" {
		t.Fatalf("the standard logger got %q", got)
	}
}
