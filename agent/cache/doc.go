// Package cache holds the X.509-SVIDs the agent has issued and keeps them
// fresh.
//
// An SVID is issued the first time a workload asks for an identity (callers
// asking for the same one at once share a single issuance), renewed by a
// rotation.Scheduler at half its life ±10%, and kept while any subscription
// holds it. Once no subscription has held it for IdleTimeout it is dropped,
// so memory follows the identities in use, not every identity ever seen.
//
// Every call to the CA, first issuance or renewal, passes one concurrency
// bound (and an optional rate), so a burst of new workloads or a CA coming
// back after an outage never sends more than MaxConcurrent requests at once.
// Each call ends after SignTimeout as an outage (ca.ErrUnavailable), so a
// hung CA holds no worker longer than that and is reported at once.
// A renewal that fails is retried with backoff while the old SVID keeps
// being served; it is never replaced by nothing.
//
// With Dir set, SVIDs survive a restart (persist.go): Restore serves every
// persisted SVID still valid, past its half-life or not (renewal is then
// due at once), so a restart while the CA is down loses none. Without a
// trusted bundle it verifies each against the trust anchors kept in its
// own file instead, renews those at once, and removes nothing it could
// not verify: only files that are expired, unparsable or misnamed go.
//
// Subscribers are told of every new SVID they hold through a coalescing
// channel and read the full current set; they never see a partial update.
// Keys are generated here and never logged; each issuance writes one audit
// line (spiffe_id, serial, not_after and the requesting pid/uid).
//
// JWTCache keeps JWT-SVIDs per (uid, identity, audience set) and is bounded
// in bytes, in total and per uid: a uid over its share loses its own least
// recently used tokens, never another uid's; a token larger than a share is
// handed out but not kept; expired tokens are dropped on the injected clock
// within ten seconds of expiry even if no call comes.
package cache
