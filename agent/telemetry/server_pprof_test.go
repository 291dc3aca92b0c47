package telemetry_test

import (
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
