package telemetry

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestProfilesFitTheWriteTimeout: net/http/pprof refuses a profile or
// trace at or past the server's write timeout, its 30 s default included;
// what reaches it is capped to 25 s, and a shorter one passes unchanged.
func TestProfilesFitTheWriteTimeout(t *testing.T) {
	tests := []struct {
		name, query, want string
	}{
		{name: "pprof's default", query: "", want: "25"},
		{name: "too long", query: "seconds=60", want: "25"},
		{name: "not a number", query: "seconds=x", want: "25"},
		{name: "short", query: "seconds=1", want: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			h := capSeconds(func(_ http.ResponseWriter, r *http.Request) { got = r.URL.Query().Get("seconds") })
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/debug/pprof/profile?"+tt.query, nil))
			if got != tt.want {
				t.Fatalf("seconds reaching pprof = %q, want %q", got, tt.want)
			}
		})
	}
}
