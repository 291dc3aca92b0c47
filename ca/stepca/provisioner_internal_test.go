package stepca

import (
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	stepjose "go.step.sm/crypto/jose"
)

// stepKey makes a provisioner key and encrypts it as step (and stepcatest)
// do: go.step.sm/crypto's EncryptJWK, PBES2 with 600,000 iterations.
func stepKey(t *testing.T, password string) (*stepjose.JSONWebKey, string) {
	t.Helper()
	jwk, err := stepjose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := jwk.Thumbprint(crypto.SHA256)
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(kid)
	enc, err := stepjose.EncryptJWK(jwk, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	s, err := enc.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return jwk, s
}

// stepClaims is the payload step-ca's JWK provisioner reads
// (authority/provisioner's jwtPayload).
type stepClaims struct {
	stepjose.Claims
	SANs []string `json:"sans,omitempty"`
	SHA  string   `json:"sha,omitempty"`
}

// A token is checked here as step-ca's JWK provisioner checks it
// (authorizeToken, with step-ca's own jose package): signed by the
// provisioner key named in kid, iss the provisioner, valid now within a
// minute's leeway, aud <ca-url>/1.0/sign, a subject; and it carries the
// SANs and the root's fingerprint, and a fresh jti each time.
func TestTokenHasTheClaimsStepCAChecks(t *testing.T) {
	jwk, encrypted := stepKey(t, "pw")
	key, err := decryptKey(encrypted, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse("https://ca.example.org:9000")
	p := &provisioner{name: "sworn", kid: key.KeyID, alg: "ES256", key: key.Key,
		audience: base.ResolveReference(&url.URL{Path: "/1.0/sign"}).String(), fingerprint: strings.Repeat("ab", 32)}
	now := time.Now().Truncate(time.Second)
	sans := []string{"spiffe://example.org/web", "web.example.org"}
	var jtis []string
	for range 2 {
		raw, err := p.token(sans[0], sans, now)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := stepjose.ParseSigned(raw)
		if err != nil {
			t.Fatal(err)
		}
		if h := tok.Headers[0]; h.KeyID != jwk.KeyID || h.Algorithm != "ES256" || h.ExtraHeaders["typ"] != "JWT" {
			t.Fatalf("header kid %q alg %q typ %v, want kid %q, ES256, JWT", h.KeyID, h.Algorithm, h.ExtraHeaders["typ"], jwk.KeyID)
		}
		pub := jwk.Public()
		var c stepClaims
		if err := tok.Claims(&pub, &c); err != nil {
			t.Fatalf("the provisioner's public key does not verify the token: %v", err)
		}
		if err := c.ValidateWithLeeway(stepjose.Expected{Issuer: "sworn", Time: time.Now().UTC()}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if len(c.Audience) != 1 || c.Audience[0] != "https://ca.example.org:9000/1.0/sign" || c.Subject != sans[0] {
			t.Fatalf("aud %v sub %q", c.Audience, c.Subject)
		}
		if !slices.Equal(c.SANs, sans) || c.SHA != p.fingerprint {
			t.Fatalf("sans %v sha %q, want %v and %q", c.SANs, c.SHA, sans, p.fingerprint)
		}
		if c.NotBefore.Time() != now || c.IssuedAt.Time() != now || c.Expiry.Time() != now.Add(5*time.Minute) {
			t.Fatalf("nbf %v iat %v exp %v, want %v, %v and five minutes on", c.NotBefore.Time(), c.IssuedAt.Time(), c.Expiry.Time(), now, now)
		}
		if b, err := hex.DecodeString(c.ID); err != nil || len(b) != 32 {
			t.Fatalf("jti %q, want 256 random bits in hex", c.ID)
		}
		jtis = append(jtis, c.ID)
	}
	if jtis[0] == jtis[1] {
		t.Fatal("two tokens share a jti; step-ca refuses a reused one")
	}
}

// A key step encrypted opens with its password and no other.
func TestDecryptKeyNeedsThePassword(t *testing.T) {
	jwk, encrypted := stepKey(t, "right")
	if _, err := decryptKey(encrypted, []byte("wrong")); err == nil {
		t.Fatal("decrypted with the wrong password")
	}
	key, err := decryptKey(encrypted, []byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	if key.KeyID != jwk.KeyID || key.IsPublic() || key.Algorithm != "ES256" {
		t.Fatalf("kid %q public %v alg %q", key.KeyID, key.IsPublic(), key.Algorithm)
	}
}
