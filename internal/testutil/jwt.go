package testutil

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// JWTParts decodes a compact JWS's header and claims, unverified, for tests
// that check which fields a signer wrote.
func JWTParts(tb testing.TB, token string) (header, claims map[string]any) {
	tb.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		tb.Fatalf("%d parts in %q", len(parts), token)
	}
	for i, out := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			tb.Fatal(err)
		}
		if err := json.Unmarshal(raw, out); err != nil {
			tb.Fatal(err)
		}
	}
	return header, claims
}
