package vault

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sworn-id/sworn/ca"
)

// JWTConfig enables JWT-SVIDs signed by Vault's transit engine: every node
// signs with the same shared key, which never leaves Vault.
type JWTConfig struct {
	TransitMount string `yaml:"transit_mount"` // default "transit"
	Key          string `yaml:"key"`           // transit key, type ecdsa-p256; empty disables JWT-SVIDs
}

// transitKey is what the backend knows of the transit key's versions.
type transitKey struct {
	versions  map[int]transitVersion
	firstSeen map[int]time.Time // zero: present at start, so already published
}

type transitVersion struct {
	kid string
	pub crypto.PublicKey
}

// readTransitKey reads every available version of the key.
func (v *CA) readTransitKey(ctx context.Context) (map[int]transitVersion, error) {
	s, err := v.c.read(ctx, v.cfg.JWT.TransitMount+"/keys/"+v.cfg.JWT.Key)
	if err != nil {
		return nil, fmt.Errorf("read transit key %s: %w", v.cfg.JWT.Key, err)
	}
	if s == nil {
		return nil, fmt.Errorf("%w: transit key %s/%s does not exist; run sworn vault setup --jwt-transit-key", ca.ErrInvalidRequest, v.cfg.JWT.TransitMount, v.cfg.JWT.Key)
	}
	if typ, _ := s.Data["type"].(string); typ != "ecdsa-p256" {
		return nil, fmt.Errorf("%w: transit key %s is %q, want ecdsa-p256", ca.ErrInvalidRequest, v.cfg.JWT.Key, typ)
	}
	keys, _ := s.Data["keys"].(map[string]any)
	out := make(map[int]transitVersion, len(keys))
	for ver, raw := range keys {
		n, err := strconv.Atoi(ver)
		if err != nil {
			continue
		}
		m, _ := raw.(map[string]any)
		pemStr, _ := m["public_key"].(string)
		pub, err := parsePublicKeyPEM(pemStr)
		if err != nil {
			return nil, fmt.Errorf("transit key %s version %d: %w", v.cfg.JWT.Key, n, err)
		}
		kid, err := ca.KeyID(pub)
		if err != nil {
			return nil, err
		}
		out[n] = transitVersion{kid: kid, pub: pub}
	}
	return out, nil
}

// updateTransit records the versions read and returns the JWKS; v.mu must
// be held.
func (v *CA) updateTransit(read map[int]transitVersion) map[string]crypto.PublicKey {
	first := v.transit.versions == nil
	if v.transit.firstSeen == nil {
		v.transit.firstSeen = map[int]time.Time{}
	}
	now := v.cfg.Clock.Now()
	for n := range read {
		if _, ok := v.transit.firstSeen[n]; !ok && !first {
			v.transit.firstSeen[n] = now
		} else if !ok {
			v.transit.firstSeen[n] = time.Time{}
		}
	}
	v.transit.versions = read
	jwks := make(map[string]crypto.PublicKey, len(read))
	for _, tv := range read {
		jwks[tv.kid] = tv.pub
	}
	return jwks
}

// signingVersion is the newest version every agent has had time to
// publish: one first seen at least two bundle refreshes ago (or present at
// start). A rotated key is thus in every JWKS before it signs.
func (v *CA) signingVersion() (int, transitVersion, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	cutoff := v.cfg.Clock.Now().Add(-2 * v.cfg.BundleRefresh)
	var versions []int
	for n := range v.transit.versions {
		versions = append(versions, n)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(versions)))
	for _, n := range versions {
		if seen := v.transit.firstSeen[n]; seen.IsZero() || !seen.After(cutoff) {
			return n, v.transit.versions[n], true
		}
	}
	return 0, transitVersion{}, false
}

// SignJWTSVID signs with the transit key (ca.JWTSigner).
func (v *CA) SignJWTSVID(ctx context.Context, req ca.JWTSVIDRequest) (string, time.Time, error) {
	if v.cfg.JWT.Key == "" {
		return "", time.Time{}, fmt.Errorf("vault ca: %w: no transit key configured for JWT-SVIDs", ca.ErrNotSupported)
	}
	if req.ID.IsZero() || req.ID.TrustDomain() != v.cfg.TrustDomain || len(req.Audience) == 0 || req.TTL <= 0 {
		return "", time.Time{}, fmt.Errorf("vault ca: %w: a SPIFFE ID of %s, an audience and a ttl are required", ca.ErrInvalidRequest, v.cfg.TrustDomain)
	}
	ver, tv, ok := v.signingVersion()
	if !ok {
		return "", time.Time{}, fmt.Errorf("vault ca: %w: transit key not read yet", ca.ErrUnavailable)
	}
	now := v.cfg.Clock.Now()
	exp := now.Add(req.TTL)
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": tv.kid, "typ": "JWT"})
	var aud any = req.Audience
	if len(req.Audience) == 1 {
		aud = req.Audience[0]
	}
	fields := map[string]any{"sub": req.ID.String(), "aud": aud, "exp": exp.Unix(), "iat": now.Unix()}
	if req.Issuer != "" {
		fields["iss"] = req.Issuer
	}
	claims, _ := json.Marshal(fields)
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	s, err := v.c.write(ctx, v.cfg.JWT.TransitMount+"/sign/"+v.cfg.JWT.Key+"/sha2-256", map[string]any{
		"input":                base64.StdEncoding.EncodeToString([]byte(input)),
		"key_version":          ver,
		"marshaling_algorithm": "jws",
	})
	v.setHealth(err)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("vault ca: sign JWT-SVID for %s: %w", req.ID, err)
	}
	sig, _ := s.Data["signature"].(string)
	token, err := transitJWS(input, sig, ver, tv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("vault ca: JWT-SVID for %s: %w", req.ID, err)
	}
	return token, time.Unix(exp.Unix(), 0), nil
}

// transitJWS joins input and transit's signature ("vault:v<N>:<sig>") into
// a compact JWS, and checks the signature with the key version the header
// names: a key deleted and re-created under the same name, or a signature
// by another version, would otherwise reach workloads as a token no JWKS
// verifies.
func transitJWS(input, sig string, ver int, tv transitVersion) (string, error) {
	parts := strings.SplitN(sig, ":", 3)
	if len(parts) != 3 || parts[0] != "vault" || parts[1] != "v"+strconv.Itoa(ver) || parts[2] == "" {
		return "", fmt.Errorf("%w: transit returned %q, want a signature by version %d", ca.ErrBadSignature, sig, ver)
	}
	token := input + "." + parts[2]
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err == nil {
		_, err = jws.Verify(tv.pub)
	}
	if err != nil {
		return "", fmt.Errorf("%w: transit signature does not verify with key version %d (kid %s): %w", ca.ErrBadSignature, ver, tv.kid, err)
	}
	return token, nil
}
