// Package fleet holds the fleet benchmark (TestFleet): many sworn agents,
// each a separate process, against one real Vault, measured from outside.
//
// TestFleet (Linux only: it reads /proc) builds the sworn binary once,
// starts a Vault dev server configured by `sworn vault setup` (AppRole
// auth, one secret ID per agent), and puts a counting reverse proxy in
// front of it: agents reach Vault only through the proxy, which counts
// every request per second by kind (leaf signs, intermediate signs,
// issuer and bundle reads, auth, other) and every answer that is not
// 2xx. Each agent has M rules that all match the test process (by its
// uid), so one go-spiffe workloadapi watch per agent holds M SVIDs with M
// distinct SPIFFE IDs; the watches, not the agents, say what every
// workload holds and when.
//
// Per mode (ca.vault.mode sign, then intermediate, each on a fresh Vault)
// it waits until every watch holds its M SVIDs, optionally measures a
// steady-state window, runs `sworn ca rotate` and waits until every
// watch's bundle holds the new issuer, then `sworn ca activate` (with
// --min-age 0: the test has just seen every agent's bundle hold the
// issuer, which is what the default --min-age waits for) and waits until
// every SVID in every watch chains to the new issuer. It fails when a
// watch saw a stream error or an update without its M identities, when
// Vault answered anything but 2xx, when an agent logged an error, when an
// SVID held at the end does not verify against the new issuer alone, or
// when the leaf signs Vault saw in any one second exceed what the agents'
// rate limiters allow (agents × (burst + max_per_second × (1 s + 1 s of
// slack for the delay between the limiter and the proxy))); in
// intermediate mode, when an agent asked Vault to sign a leaf at all.
//
// Run by go test (make test) it is reduced: 3 agents × 10 identities,
// svid.ttl 10m (so no SVID is due for renewal before the wait for the
// re-issue gives up: only the re-issue the activation forces can move
// them), rotation.max_per_second 2 (so the bound is one the re-issue
// would break without the limiter), bundle_refresh 1s, no steady-state
// window. make bench-fleet sets FLEET_AGENTS,
// FLEET_IDENTITIES and FLEET_TTL (default 50, 200, 5m), which selects the
// full run: the agents' default rate (20/s in sign mode, no cap in
// intermediate mode) and bundle_refresh (30s); the watches start spread
// over one renewal period ((TTL+30s)/2 − 30s: Vault backdates NotBefore by
// 30s and renewal is due at half of NotBefore→NotAfter), as a fleet's
// workloads do, and Vault's requests are counted over the next period;
// the figures are printed. FLEET_MODES (sign,intermediate) narrows the
// modes.
package fleet
