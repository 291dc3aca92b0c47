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
// bound and the rate cap (timed on the injected clock), so a burst of new
// workloads or a CA coming back after an outage never sends more than
// MaxConcurrent requests at once nor more than Rate a second. Each call
// ends after SignTimeout (less for a renewal whose SVID has little left) as
// an outage (ca.ErrUnavailable), so a hung CA holds no worker longer than
// that and is reported at once. A renewal that fails is retried with
// backoff while the old SVID keeps being served; it is never replaced by
// nothing; RetryFailed renews every failed one when the CA is back, most
// urgent first and paced as a re-issue is (below), so agents that see a new
// Vault leader in the same second do not hand it their whole backlogs in
// that second. A failed first issuance is remembered for its
// backoff, so asking again meanwhile costs no CA call. An SVID the CA
// returns already expired is refused, and an expired SVID is never handed
// to a subscriber.
//
// An SVID is kept as its encodings plus the leaf's serial and validity:
// serving costs no further work, and an identity costs about 2 KB.
//
// With Dir set, SVIDs survive a restart (persist.go). Their files are
// written off the renewal path by one writer that keeps only each
// identity's latest state, and are not fsynced (the CA can re-issue them);
// Flush, which Run calls on its way out, waits until the disk matches the
// cache. Restore serves every
// persisted SVID still valid, past its half-life or not (renewal is then
// due at once), so a restart while the CA is down loses none. Without a
// trusted bundle it verifies each against the trust anchors kept in its
// own file instead, renews those at once, and removes nothing it could
// not verify: only files that are expired, unparsable or misnamed go.
//
// RotateAndWait, the re-issue of every SVID after a signing-CA change, is
// paced over ReissueSpread per 100 SVIDs (rotation.Scheduler.Spread): most
// urgent first, evenly spaced from a random phase so agents that see the
// change together interleave, never past half an SVID's remaining life,
// and still within MaxConcurrent and Rate. It returns once every SVID
// cached at the call has been replaced, so it takes up to that window.
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
