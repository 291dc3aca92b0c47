// Package oidc serves a trust domain's JWT bundle through OpenID Connect
// discovery, so that verifiers that only speak OIDC (Vault's JWT auth, AWS
// STS, GCP workload identity federation) can check JWT-SVIDs, as SPIRE's
// oidc-discovery-provider does.
//
// Handler owns two documents under the issuer's path:
// /.well-known/openid-configuration (issuer, jwks_uri = issuer + "/keys",
// the signing algorithms of the keys served, subject types [public],
// response types [id_token]) and /keys (the JWT bundle as a JWKS, each key
// with kid, alg and use "sig").
//
// Guarantees:
//   - Only public keys leave: a key is rendered from its public half, and a
//     key type JWK cannot state (none sworn makes) is left out.
//   - Each request reads the Store's current snapshot, so a rotated JWT key
//     is served from the first request after the Store has it; documents
//     are rendered once per snapshot.
//   - Responses carry Cache-Control max-age (DefaultMaxAge, 5 minutes:
//     a verifier that does not re-fetch on an unknown kid may miss a key
//     published less than that before it signs) and a strong ETag that is
//     a hash of the body, so it is the same on every agent serving the
//     same keys and across restarts; If-None-Match is answered 304.
//   - Any other path is 404 and any method but GET and HEAD is 405.
//   - While the source holds no JWT bundle for the trust domain (the
//     agent's CA is not up; sworn oidc has not heard from its agent) both
//     documents are 503 with Retry-After and Cache-Control: no-store, never
//     an empty key set a verifier would cache and fail tokens against.
//
// The Source is the agent's bundle store, or for `sworn oidc` a Watched:
// the JWT bundles the Workload API streams, the last ones kept while the
// agent is away. ListenHTTPS and Serve are the one way both serve: HTTPS
// with certificate files re-read when they change (the last good pair kept
// if new files do not load), and per-connection errors to the structured
// log.
package oidc
