package telemetry_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/agent/telemetry"
	"github.com/sworn-id/sworn/internal/version"
)

// /metrics carries sworn_build_info with the facts `sworn version` prints.
func TestMetricsExposeBuildInfo(t *testing.T) {
	addr := serve(t, &telemetry.Server{Metrics: telemetry.New(), Ready: func() error { return nil }})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	v := version.Get()
	want := fmt.Sprintf("sworn_build_info{commit=%q,go_version=%q,version=%q} 1\n", v.Commit, v.GoVersion, v.Version)
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics has no %q:\n%s", want, grepLines(string(body), "sworn_build_info"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
