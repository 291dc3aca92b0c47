package proxy

import (
	"net/http"
	"testing"
)

// TestTargetTransportTakesNoProxy holds what TestHTTPModeIgnoresProxy-
// Environment shows end to end, without depending on test order: Go reads
// HTTP_PROXY once per process, so that test alone passes against a
// transport that honours it if an earlier test cached an empty setting.
func TestTargetTransportTakesNoProxy(t *testing.T) {
	tr, ok := (&Proxy{}).targetTransport().(*http.Transport)
	if !ok {
		t.Fatalf("targetTransport is a %T, want *http.Transport", (&Proxy{}).targetTransport())
	}
	if tr.Proxy != nil {
		t.Fatal("HTTP mode's transport takes a proxy from the environment; it must reach the target and nothing else")
	}
}
