package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestSVIDWriteReadyFailsNamingAnExpiredFile: /ready turns 503 the moment
// the X.509-SVID or a JWT-SVID that `svid write` last wrote expires (its
// renewal failing meanwhile), and the body names that file; /live stays 200.
func TestSVIDWriteReadyFailsNamingAnExpiredFile(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name         string
		x509, jwt    time.Time // what was written last is good until
		wantCode     int
		wantNotReady []string
		wantX509     string
		wantJWT      string
	}{
		{name: "both current", x509: t0.Add(time.Second), jwt: t0.Add(time.Hour),
			wantCode: http.StatusOK, wantX509: "current", wantJWT: "current"},
		{name: "X.509-SVID expires now", x509: t0, jwt: t0.Add(time.Hour),
			wantCode: http.StatusServiceUnavailable, wantNotReady: []string{"tls.crt: expired at 2026-01-02T03:04:05Z"},
			wantX509: "expired", wantJWT: "current"},
		{name: "JWT-SVID expired", x509: t0.Add(time.Hour), jwt: t0.Add(-time.Second),
			wantCode: http.StatusServiceUnavailable, wantNotReady: []string{"app.jwt: expired at 2026-01-02T03:04:04Z"},
			wantX509: "current", wantJWT: "expired"},
		{name: "both expired", x509: t0.Add(-time.Minute), jwt: t0,
			wantCode:     http.StatusServiceUnavailable,
			wantNotReady: []string{"app.jwt: expired at 2026-01-02T03:04:05Z", "tls.crt: expired at 2026-01-02T03:03:05Z"},
			wantX509:     "expired", wantJWT: "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := &writePlan{svidName: "tls.crt", keyName: "tls.key", bundleName: "ca.pem",
				jwtSVIDs: []jwtTarget{{audience: "a", file: "app.jwt"}}}
			s := newWriteStatus(plan, func() time.Time { return t0 })
			s.x509Written(tc.x509)
			s.jwtSVIDWritten("app.jwt", tc.jwt)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addr, _, err := serveHealth(ctx, "127.0.0.1:0", "/live", "/ready", s)
			if err != nil {
				t.Fatal(err)
			}
			if code, _ := getHealth(t, "http://"+addr.String()+"/live"); code != http.StatusOK {
				t.Errorf("/live: %d, want 200", code)
			}
			code, v := getHealth(t, "http://"+addr.String()+"/ready")
			if code != tc.wantCode || !slices.Equal(v.NotReady, tc.wantNotReady) {
				t.Fatalf("/ready: %d, not_ready %q; want %d, %q", code, v.NotReady, tc.wantCode, tc.wantNotReady)
			}
			if v.X509 != tc.wantX509 || v.JWTSVIDs["app.jwt"] != tc.wantJWT {
				t.Fatalf("/ready says x509 %q, app.jwt %q; want %q, %q", v.X509, v.JWTSVIDs["app.jwt"], tc.wantX509, tc.wantJWT)
			}
		})
	}
}

func getHealth(t *testing.T, url string) (int, healthView) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v healthView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode, v
}
