package ca

import (
	"crypto"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// KeyID returns the RFC 7638 thumbprint of pub, base64url: a key ID that is
// the same wherever the key is, so every node names a shared key alike.
func KeyID(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("ca: key id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// SignJWT signs a JWT-SVID with key (ES256 for a P-256 key), its header
// carrying only alg, kid and typ, its claims sub, aud, exp and iat, and
// iss when req.Issuer is set.
func SignJWT(key crypto.Signer, kid string, req JWTSVIDRequest, now, notAfter time.Time) (string, time.Time, error) {
	if len(req.Audience) == 0 || req.TTL <= 0 || req.ID.IsZero() {
		return "", time.Time{}, fmt.Errorf("%w: a SPIFFE ID, an audience and a positive ttl are required", ErrInvalidRequest)
	}
	exp := now.Add(req.TTL)
	if exp.After(notAfter) {
		exp = notAfter
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ca: jwt signer: %w", err)
	}
	token, err := jwt.Signed(signer).Claims(jwt.Claims{
		Subject:  req.ID.String(),
		Audience: jwt.Audience(req.Audience),
		Expiry:   jwt.NewNumericDate(exp),
		IssuedAt: jwt.NewNumericDate(now),
		Issuer:   req.Issuer, // omitted when empty
	}).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ca: sign jwt: %w", err)
	}
	return token, exp.Truncate(time.Second), nil
}
