package stepca

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// tokenLifetime is a one-time token's validity, step's client's.
const tokenLifetime = 5 * time.Minute

// provisioner is a JWK provisioner's decrypted key: it mints the one-time
// tokens step-ca's JWK provisioner accepts for POST /sign.
type provisioner struct {
	name        string // the token's iss
	kid         string // the token's kid header: step-ca finds the key by it
	alg         jose.SignatureAlgorithm
	key         any
	audience    string // <ca-url>/1.0/sign
	fingerprint string // the token's sha: the root that verified the connection
}

// provisionerEntry is the part of GET /provisioners' entries a JWK
// provisioner is loaded from.
type provisionerEntry struct {
	Name         string `json:"name"`
	EncryptedKey string `json:"encryptedKey"`
}

// loadProvisioner pages through GET /provisioners and decrypts the key of
// the first provisioner named name whose encrypted key password opens, as
// step's ca.NewProvisioner does.
func (c *client) loadProvisioner(ctx context.Context, name string, password []byte) (*provisioner, error) {
	var cursor, fingerprint string
	for {
		q := url.Values{"limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Provisioners []provisionerEntry `json:"provisioners"`
			NextCursor   string             `json:"nextCursor"`
		}
		state, err := c.get(ctx, &url.URL{Path: "/provisioners", RawQuery: q.Encode()}, &page)
		if err != nil {
			return nil, err
		}
		if fingerprint == "" {
			if state == nil || len(state.VerifiedChains) == 0 {
				return nil, errors.New("GET /provisioners: the connection has no verified chain")
			}
			last := state.VerifiedChains[len(state.VerifiedChains)-1]
			fingerprint = fingerprintOf(last[len(last)-1])
		}
		for _, e := range page.Provisioners {
			if e.Name != name || e.EncryptedKey == "" {
				continue
			}
			if jwk, err := decryptKey(e.EncryptedKey, password); err == nil {
				return &provisioner{name: name, kid: jwk.KeyID, alg: jose.SignatureAlgorithm(jwk.Algorithm), key: jwk.Key,
					audience: c.base.ResolveReference(&url.URL{Path: "/1.0/sign"}).String(), fingerprint: fingerprint}, nil
			}
		}
		if page.NextCursor == "" {
			return nil, fmt.Errorf("provisioner %q not found (or the password is wrong)", name)
		}
		cursor = page.NextCursor
	}
}

// decryptKey opens a provisioner's encryptedKey: a compact JWE, PBES2
// with the provisioner password, around the private JWK.
func decryptKey(encrypted string, password []byte) (*jose.JSONWebKey, error) {
	enc, err := jose.ParseEncrypted(encrypted,
		[]jose.KeyAlgorithm{jose.PBES2_HS256_A128KW, jose.PBES2_HS384_A192KW, jose.PBES2_HS512_A256KW},
		[]jose.ContentEncryption{jose.A128GCM, jose.A192GCM, jose.A256GCM, jose.A128CBC_HS256, jose.A192CBC_HS384, jose.A256CBC_HS512})
	if err != nil {
		return nil, fmt.Errorf("encrypted key: %w", err)
	}
	data, err := enc.Decrypt(password)
	if err != nil {
		return nil, fmt.Errorf("encrypted key: %w", err)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(data, &jwk); err != nil {
		return nil, fmt.Errorf("encrypted key: %w", err)
	}
	if jwk.IsPublic() || !jwk.Valid() || jwk.Algorithm == "" || jwk.KeyID == "" {
		return nil, errors.New("encrypted key: not a private JWK with an alg and a kid")
	}
	return &jwk, nil
}

// token mints a one-time token for subject, with the claims step's client
// sets and step-ca's JWK provisioner checks: iss the provisioner's name,
// aud <ca-url>/1.0/sign, sub, nbf/iat now and exp five minutes on, a
// random jti (step-ca refuses a token it has seen), sans (the SANs the
// CSR may carry) and sha (the root's fingerprint). now is the wall clock:
// step-ca checks the times against its own.
func (p *provisioner) token(subject string, sans []string, now time.Time) (string, error) {
	jti := make([]byte, 32)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: p.alg, Key: p.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", p.kid))
	if err != nil {
		return "", err
	}
	claims := jwt.Claims{
		Issuer:    p.name,
		Subject:   subject,
		Audience:  jwt.Audience{p.audience},
		NotBefore: jwt.NewNumericDate(now),
		IssuedAt:  jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(now.Add(tokenLifetime)),
		ID:        hex.EncodeToString(jti),
	}
	extra := map[string]any{"sans": sans, "sha": p.fingerprint}
	return jwt.Signed(signer).Claims(claims).Claims(extra).Serialize()
}
