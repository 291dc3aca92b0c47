package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/agent/telemetry"
)

func TestPProfIsServedOnlyWhenTurnedOn(t *testing.T) {
	for _, on := range []bool{false, true} {
		s := &telemetry.Server{Metrics: telemetry.New(), Ready: func() error { return nil }, PProf: on}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if on && (rec.Code != http.StatusOK || rec.Body.Len() == 0) {
				t.Fatalf("debug.pprof on: GET %s = %d", path, rec.Code)
			}
			if !on && rec.Code != http.StatusNotFound {
				t.Fatalf("debug.pprof off: GET %s = %d %s, want 404", path, rec.Code, strings.TrimSpace(rec.Body.String()))
			}
		}
	}
}

// TestCPUProfileThroughTheServer: a CPU profile is fetched through the
// served port, whose write timeout pprof checks the duration against.
func TestCPUProfileThroughTheServer(t *testing.T) {
	s := &telemetry.Server{Metrics: telemetry.New(), Ready: func() error { return nil }, PProf: true}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	resp, err := http.Get("http://" + l.Addr().String() + "/debug/pprof/profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("GET /debug/pprof/profile?seconds=1 = %d %s", resp.StatusCode, body)
	}
}
