package telemetry_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/telemetry"
)

// serve runs a telemetry server on a loopback port until the test ends.
func serve(t *testing.T, s *telemetry.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return l.Addr().String()
}

// The health port is open to every local user. A connection kept alive
// after a request, or one that never sends one, must be closed by the
// agent, or a local process could hold descriptors there for good.
func TestServerClosesIdleConnections(t *testing.T) {
	addr := serve(t, &telemetry.Server{Metrics: telemetry.New(), Ready: func() error { return nil }, IdleTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /live HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /live = %v, %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	// The connection is kept alive; the agent must end it. A guard
	// deadline turns "never" into a failure instead of a hung test.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle kept-alive connection: read = %v, want EOF from the agent closing it", err)
	}
}

func TestServerRefusesHugeHeaders(t *testing.T) {
	addr := serve(t, &telemetry.Server{Metrics: telemetry.New(), Ready: func() error { return nil }})
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/live", nil)
	req.Header.Set("X-Pad", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB of headers: %s, want 431", resp.Status)
	}
}
