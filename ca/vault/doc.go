// Package vault is sworn's production CA backend: HashiCorp Vault's PKI
// secrets engine, reached with github.com/hashicorp/vault/api.
//
// Two modes:
//   - sign (default): the agent makes each SVID's key pair and sends a CSR to
//     <mount>/sign/<role>. Vault signs every SVID; the agent never holds a
//     CA key. Every certificate Vault returns is checked against the
//     X.509-SVID profile (ca.CheckX509SVID) before it is handed out, so a
//     misconfigured role yields an error and an alert metric, never a bad
//     SVID.
//   - intermediate: the agent obtains a short-lived intermediate CA through
//     <mount>/root/sign-intermediate (URI SAN spiffe://<td>, path length 0,
//     URI name constraint to the trust domain), keeps its key in memory only,
//     signs leaves itself and renews the intermediate at half its life. It
//     survives Vault outages shorter than the intermediate's remaining life
//     and costs Vault one request per intermediate instead of one per SVID.
//     The price: while the intermediate is valid the node can mint any ID of
//     the trust domain (Vault's URI name constraints cover the host, never
//     the path), so a compromised node is a trust-domain-wide compromise
//     until the intermediate expires. Keep intermediate_ttl short.
//
// The trust bundle is the set of trust anchors of every issuer in the mount
// (LIST <mount>/issuers, then <mount>/issuer/<id>/json), refreshed on an
// interval; an issuer created in Vault is therefore trusted by every
// workload before an operator makes it the default (signing) issuer. A
// change of default issuer is reported as a change of signing CA, which
// makes the agent re-issue every SVID.
//
// No SVID outlives its issuer, and none is cut short by it: before each
// SVID, the backend checks that Vault's default issuer (and every
// certificate above it), or in intermediate mode also the agent's
// intermediate, is valid for the SVID's full lifetime. If not, it signs
// nothing, calls Vault for nothing, and returns ca.ErrExpired naming the
// certificate, its end and the fix (rotate Vault's issuer, or lower
// svid.ttl); Health reports it, across bundle refreshes, until the issuer
// covers an SVID again. Vault itself would cap such an SVID at the
// issuer's end and backdate it, so each one would be due for renewal as
// it arrived. In intermediate mode the intermediate is also renewed as
// soon as it can no longer cover the last SVID lifetime asked for.
//
// JWT-SVIDs (optional) are signed by a shared transit key; each signature is
// verified against the key version the token names before the token is
// handed out, and one that does not verify wraps ca.ErrBadSignature.
//
// Auth: token (file or VAULT_TOKEN), approle, kubernetes or jwt. A
// renewable token is kept alive with Vault's LifetimeWatcher; when it can no
// longer be renewed, or a call is refused with 403, the backend logs in
// again (re-reading token and secret files, so rotated credentials are
// picked up). Failures to reach Vault (no answer, 429, 5xx, sealed) wrap
// ca.ErrUnavailable, so the agent keeps serving cached SVIDs and retries
// with backoff. A refusal wraps ca.ErrRefused instead: a login Vault turns
// away (any 4xx), or a 403 that persists after a fresh login (the policy
// does not allow the call). A single 403 is not a refusal: it is how an
// expired or revoked token shows, and it triggers the re-login.
//
// An HA cluster is reached through a load balancer (address) or through
// its nodes (addresses): calls go to one node, and a failed connection
// moves them to the next, where they stay. Only a failed connection moves
// on, never a request that reached a node: that may have been carried
// out. A standby forwards requests to the active node; one that has lost
// the active node answers with an error (ca.ErrUnavailable) or redirects
// to it, until Raft elects a new leader.
//
// Config is also the agent's ca.vault section: its YAML keys, its defaults
// (ApplyDefaults) and its one Validate, which New calls too and which names
// each bad field by its key, live here and nowhere else.
package vault
