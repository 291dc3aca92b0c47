package oidc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// discovery is the subset of OpenID Connect Discovery 1.0 a JWT verifier
// reads; the fields the spec requires for an OP that only issues ID
// tokens are all present.
type discovery struct {
	Issuer             string   `json:"issuer"`
	JWKSURI            string   `json:"jwks_uri"`
	ResponseTypes      []string `json:"response_types_supported"`
	SubjectTypes       []string `json:"subject_types_supported"`
	IDTokenSigningAlgs []string `json:"id_token_signing_alg_values_supported"`
}

// defaultAlg is listed when there are no keys: the field is required, and
// ES256 is what sworn's signers use.
const defaultAlg = "ES256"

// render builds both documents from keys (by key ID).
func render(issuer string, keys map[string]crypto.PublicKey) (*documents, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	var algs []string
	for _, kid := range slices.Sorted(maps.Keys(keys)) {
		alg := Algorithm(keys[kid])
		if alg == "" {
			continue // no JWK for it; sworn makes none such
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: keys[kid], KeyID: kid, Algorithm: alg, Use: "sig"})
		if !slices.Contains(algs, alg) {
			algs = append(algs, alg)
		}
	}
	if len(algs) == 0 {
		algs = []string{defaultAlg}
	}
	slices.Sort(algs)
	keysBody, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("oidc: jwks: %w", err)
	}
	discBody, err := json.Marshal(discovery{
		Issuer:             issuer,
		JWKSURI:            strings.TrimSuffix(issuer, "/") + KeysPath,
		ResponseTypes:      []string{"id_token"},
		SubjectTypes:       []string{"public"},
		IDTokenSigningAlgs: algs,
	})
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery document: %w", err)
	}
	return &documents{
		discovery: response{body: discBody, etag: etag(discBody)},
		keys:      response{body: keysBody, etag: etag(keysBody)},
	}, nil
}

// etag is a strong validator: a hash of the body, the same on every agent
// that serves the same keys.
func etag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// Algorithm is the JWS algorithm a key signs with, or "" for a key type
// JWK cannot state. An RSA key is taken to sign RS256, the algorithm every
// OIDC verifier must support.
func Algorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256"
		case elliptic.P384():
			return "ES384"
		case elliptic.P521():
			return "ES512"
		}
	case *rsa.PublicKey:
		return "RS256"
	case ed25519.PublicKey:
		return "EdDSA"
	}
	return ""
}
