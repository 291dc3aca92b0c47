package bundle_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/internal/testutil"
)

var peerTD = spiffeid.RequireTrustDomainFromString("peer.example")

// bundleJSON is a SPIFFE bundle of td holding n distinct CAs, each with a
// SPIFFE URI SAN of td (a bundle drops duplicates), with a refresh hint.
func bundleJSON(tb testing.TB, td spiffeid.TrustDomain, n int, hint time.Duration) []byte {
	tb.Helper()
	b := spiffebundle.New(td)
	for range n {
		b.AddX509Authority(testutil.NewCA(tb, &x509.Certificate{URIs: []*url.URL{td.ID().URL()}}).Cert)
	}
	b.SetRefreshHint(hint)
	data, err := b.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// endpoint is a real HTTPS bundle endpoint that answers with handler; it
// returns the client the agent would use to fetch from it.
func endpoint(t *testing.T, handler http.HandlerFunc, timeout time.Duration) (string, *http.Client) {
	t.Helper()
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsCfg.RootCAs = pool
	return srv.URL, bundle.NewClient(tlsCfg, timeout)
}

// A bundle endpoint is another organisation's server; each answer an
// attacker who holds it could give is refused with a reason, before it is
// read whole or trusted.
func TestFetchBundleRefusesWhatAPeerMustNotSend(t *testing.T) {
	good := bundleJSON(t, peerTD, 1, time.Minute)
	other := spiffeid.RequireTrustDomainFromString("victim.example")
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
		invalid bool // refused for what it holds: bundle.ErrInvalid
	}{
		{name: "good", handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(good) }},
		{name: "larger than the limit", handler: func(w http.ResponseWriter, _ *http.Request) {
			pad := strings.Repeat(" ", bundle.MaxBytes)
			_, _ = w.Write([]byte(pad))
			_, _ = w.Write(good)
		}, wantErr: "endpoint URL: bundle for peer.example is larger than 1048576 bytes; refused", invalid: true},
		{name: "too many authorities", handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write(bundleJSON(t, peerTD, bundle.MaxAuthorities+1, time.Minute))
		}, wantErr: "holds 257 authorities, more than 256", invalid: true},
		{name: "another trust domain's CA", handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write(bundleJSON(t, other, 1, time.Minute))
		}, wantErr: "holds a CA of victim.example", invalid: true},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/bundle", http.StatusFound)
		}, wantErr: "redirects are not followed"},
		{name: "error status with a bundle body", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write(good)
		}, wantErr: "answered 500"},
		{name: "not a bundle", handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"keys": 1}`)) }, wantErr: "bundle for peer.example", invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, client := endpoint(t, tt.handler, 5*time.Second)
			b, err := bundle.Fetch(context.Background(), client, peerTD, u)
			if tt.wantErr == "" {
				if err != nil || len(b.X509Authorities()) != 1 {
					t.Fatalf("FetchBundle = %v, %v; want one authority", b, err)
				}
				return
			}
			want := strings.ReplaceAll(tt.wantErr, "URL", u)
			if err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, bundle.ErrInvalid) != tt.invalid {
				t.Fatalf("FetchBundle err = %v, want %q, bundle.ErrInvalid %v", err, want, tt.invalid)
			}
		})
	}
}

// An endpoint that accepts and never answers would otherwise hold the
// refresh loop for good (go-spiffe's fetcher has no timeout of its own).
func TestFetchBundleTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	u, client := endpoint(t, func(http.ResponseWriter, *http.Request) { <-release }, 200*time.Millisecond)
	_, err := bundle.Fetch(context.Background(), client, peerTD, u)
	if err == nil || !strings.Contains(err.Error(), "Client.Timeout exceeded") {
		t.Fatalf("FetchBundle err = %v, want a client timeout", err)
	}
}

// The watch loop keeps the last good bundle when the endpoint starts
// answering with something it must refuse.
func TestWatchKeepsTheLastGoodBundle(t *testing.T) {
	good := bundleJSON(t, peerTD, 1, time.Second)
	var bad atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if bad.Load() {
			_, _ = w.Write(bundleJSON(t, spiffeid.RequireTrustDomainFromString("victim.example"), 1, time.Second))
			return
		}
		_, _ = w.Write(good)
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	store := bundle.NewStore()
	updated, failed := make(chan struct{}, 8), make(chan error, 8)
	f := &bundle.Federation{TrustDomain: peerTD, URL: srv.URL, Profile: bundle.ProfileHTTPSWeb, WebRoots: pool,
		OnUpdate: func(*spiffebundle.Bundle) { updated <- struct{}{} },
		OnError:  func(err error) { failed <- err },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Watch(ctx, store) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-updated:
	case err := <-failed:
		t.Fatalf("first fetch failed: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no fetch")
	}
	bad.Store(true)
	select {
	case err := <-failed:
		if !strings.Contains(err.Error(), "holds a CA of victim.example") {
			t.Fatalf("refusal = %v", err)
		}
	case <-updated:
		t.Fatal("a bundle with another trust domain's CA was taken")
	case <-time.After(10 * time.Second):
		t.Fatal("no second fetch")
	}
	if b, ok := store.Snapshot().Bundles[peerTD]; !ok || len(b.X509Authorities()) != 1 {
		t.Fatalf("store after a refused fetch: %v, %v; want the last good bundle", b, ok)
	}
}
