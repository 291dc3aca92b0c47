package agent_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
)

func jwtAgent(t *testing.T) *testAgent {
	t.Helper()
	self := fmt.Sprintf("unix:uid:%d", os.Geteuid())
	cfg := newConfig(t,
		config.Rule{SPIFFEID: "spiffe://example.org/web", Selectors: []string{self}, Hint: "web"},
		config.Rule{SPIFFEID: "spiffe://example.org/batch", Selectors: []string{self}},
	)
	// The agent's CA is made ten minutes in the past, so that expiredJWT
	// can have it sign a token that expired before go-spiffe's one-minute
	// leeway: a CA never signs before its own NotBefore.
	past := clocktesting.NewFakeClock(time.Now().Add(-caAge))
	if _, err := local.New(local.Config{TrustDomain: td, Dir: filepath.Join(cfg.DataDir, "ca"), Clock: past}); err != nil {
		t.Fatal(err)
	}
	return startAgent(t, cfg)
}

// caAge is how long before the test jwtAgent's CA was made.
const caAge = 10 * time.Minute

func TestJWTSVIDsVerifyWithGoSpiffeAndAreCached(t *testing.T) {
	ta := jwtAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(ta.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	svids, err := client.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: "db", ExtraAudiences: []string{"cache"}})
	if err != nil || len(svids) != 2 {
		t.Fatalf("FetchJWTSVIDs = %d tokens, %v; want one per identity", len(svids), err)
	}
	bundles, err := client.FetchJWTBundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svids {
		parsed, err := jwtsvid.ParseAndValidate(s.Marshal(), bundles, []string{"cache"})
		if err != nil || parsed.ID != s.ID {
			t.Fatalf("ParseAndValidate(%s) = %v", s.ID, err)
		}
		if got := time.Until(parsed.Expiry); got > 5*time.Minute || got < 4*time.Minute {
			t.Fatalf("token lives %v, want the 5m default", got)
		}
	}

	one, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db", Subject: spiffeid.RequireFromString("spiffe://example.org/batch")})
	if err != nil || one.ID.Path() != "/batch" {
		t.Fatalf("FetchJWTSVID for /batch: %v, %v", one, err)
	}
	again, _ := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db", Subject: spiffeid.RequireFromString("spiffe://example.org/batch")})
	if again.Marshal() != one.Marshal() {
		t.Fatal("a second fetch for the same identity and audience signed a new token")
	}
	_, err = client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db", Subject: spiffeid.RequireFromString("spiffe://example.org/not-mine")})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a token for an identity the caller does not hold: %v, want PermissionDenied", err)
	}

	raw := rawClient(t, ta)
	mdctx := metadata.NewOutgoingContext(ctx, metadata.Pairs("workload.spiffe.io", "true"))
	if _, err := raw.FetchJWTSVID(mdctx, &workload.JWTSVIDRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no audience: %v, want InvalidArgument", err)
	}
}

func TestValidateJWTSVID(t *testing.T) {
	ta := jwtAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(ta.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	good, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db", Subject: spiffeid.RequireFromString("spiffe://example.org/web")})
	if err != nil {
		t.Fatal(err)
	}
	token := good.Marshal()
	parts := strings.Split(token, ".")
	var header map[string]any
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	_ = json.Unmarshal(h, &header)

	encode := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	claims := map[string]any{"sub": "spiffe://example.org/web", "aud": "db", "exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix()}

	// HS256 keyed with the public key: the classic algorithm confusion.
	bundles, _ := client.FetchJWTBundles(ctx)
	b, _ := bundles.GetJWTBundleForTrustDomain(td)
	pub, _ := b.FindJWTAuthority(header["kid"].(string))
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	hsInput := encode(map[string]any{"alg": "HS256", "kid": header["kid"], "typ": "JWT"}) + "." + encode(claims)
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsInput))
	hs256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	none := encode(map[string]any{"alg": "none", "typ": "JWT"}) + "." + encode(claims) + "."
	tampered := parts[0] + "." + encode(map[string]any{"sub": "spiffe://example.org/admin", "aud": "db", "exp": time.Now().Add(time.Minute).Unix()}) + "." + parts[2]

	foreignKey, _ := ca.KeyECP256.Generate()
	foreignKid, _ := ca.KeyID(foreignKey.Public())
	foreign, _, err := ca.SignJWT(foreignKey, foreignKid, ca.JWTSVIDRequest{ID: spiffeid.RequireFromString("spiffe://example.org/web"), Audience: []string{"db"}, TTL: time.Minute}, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expired := expiredJWT(t, ta)

	tests := []struct {
		name, token, audience string
		want                  codes.Code
	}{
		{name: "valid", token: token, audience: "db", want: codes.OK},
		{name: "wrong audience", token: token, audience: "other", want: codes.InvalidArgument},
		{name: "tampered claims", token: tampered, audience: "db", want: codes.InvalidArgument},
		{name: "alg none", token: none, audience: "db", want: codes.InvalidArgument},
		{name: "HS256 with the public key", token: hs256, audience: "db", want: codes.InvalidArgument},
		{name: "signed by a key outside the bundle", token: foreign, audience: "db", want: codes.InvalidArgument},
		{name: "expired", token: expired, audience: "db", want: codes.InvalidArgument},
		{name: "empty audience", token: token, audience: "", want: codes.InvalidArgument},
		{name: "empty token", token: "", audience: "db", want: codes.InvalidArgument},
	}
	raw := rawClient(t, ta)
	mdctx := metadata.NewOutgoingContext(ctx, metadata.Pairs("workload.spiffe.io", "true"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := raw.ValidateJWTSVID(mdctx, &workload.ValidateJWTSVIDRequest{Audience: tt.audience, Svid: tt.token})
			if status.Code(err) != tt.want {
				t.Fatalf("ValidateJWTSVID: %v, want %v", err, tt.want)
			}
			if tt.want == codes.OK && (resp.SpiffeId != "spiffe://example.org/web" || resp.Claims.Fields["aud"] == nil) {
				t.Fatalf("response %v", resp)
			}
		})
	}
}

// expiredJWT has the agent's own key sign a token that expired five minutes ago.
func expiredJWT(t *testing.T, ta *testAgent) string {
	t.Helper()
	// Signed when the agent's CA was made (see jwtAgent), for half of
	// that time: it expired well past go-spiffe's leeway.
	past := clocktesting.NewFakeClock(time.Now().Add(-caAge))
	c, err := local.New(local.Config{TrustDomain: td, Dir: ta.Config.DataDir + "/ca", Clock: past})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := c.SignJWTSVID(context.Background(), ca.JWTSVIDRequest{ID: spiffeid.RequireFromString("spiffe://example.org/web"), Audience: []string{"db"}, TTL: caAge / 2})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestJWTCommands(t *testing.T) {
	ta := jwtAgent(t)
	out := clitest.Run(t, "jwt", "fetch", "--audience", "db", "--spiffe-id", "spiffe://example.org/web", "--socket", ta.Config.SocketPath)
	id, token, ok := strings.Cut(strings.TrimSpace(out), "\t")
	if !ok || id != "spiffe://example.org/web" {
		t.Fatalf("jwt fetch: %q", out)
	}
	if out := clitest.Run(t, "jwt", "validate", "--audience", "db", token, "--socket", ta.Config.SocketPath); !strings.Contains(out, "valid: spiffe://example.org/web") {
		t.Fatalf("jwt validate: %q", out)
	}
	if out := clitest.Run(t, "bundle", "show", "--jwt", "--socket", ta.Config.SocketPath); !strings.Contains(out, `"kty":"EC"`) {
		t.Fatalf("bundle show --jwt: %q", out)
	}
}
