// Package workload serves the SPIFFE Workload API (go-spiffe's
// proto/spiffe/workload) to local processes.
//
// Every call must carry the metadata workload.spiffe.io: true, else it fails
// with InvalidArgument before anything else happens. The caller is attested
// from its socket credentials; if it exits during attestation (its PID could
// then belong to another process) the call fails with Unavailable, and a
// caller no rule matches gets PermissionDenied. A stream sends its first
// message at once and then the full state again whenever one of its SVIDs
// rotates, a bundle changes or the rules change; if a rule change leaves the
// caller with no identity the stream ends with PermissionDenied. gRPC
// status codes are chosen here and nowhere else.
//
// The same server answers Envoy's Secret Discovery Service (v3, sds.go) on
// the same socket, attested the same way but without the security header,
// which Envoy does not send (as SPIRE's agent does). Secrets are named as
// SPIRE names them: an SVID by its SPIFFE ID, a bundle by its trust
// domain's ID, the caller's first SVID as "default", its trust domain's
// bundle as "ROOTCA" and every bundle it may see as "ALL" (the last three
// configurable); a name the caller does not hold is InvalidArgument naming
// it. Bundles go out as Envoy's SPIFFE certificate validator for an Envoy
// of 1.18 or later that has not turned it off, as trusted_ca otherwise.
// StreamSecrets keeps to xDS: versions and nonces, ACKs answered with
// nothing, NACKs logged, stale nonces ignored. Each SVID's secret is built
// once and each bundle snapshot's validation contexts once per kind, shared
// by every stream that asks (sds_secrets.go); a stream is only ever sent
// what was built from the very SVID it holds. What is kept does not grow
// with streams: one entry per cache entry key, dropped when its SVID is
// replaced or expires, and the latest bundle snapshot's contexts only.
//
// Limits: a JWT-SVID request names at most MaxAudiences audiences, each at
// most MaxAudienceLen bytes and MaxAudienceBytes in all, else
// InvalidArgument says which bound it broke. The interceptors of
// ServerOptions refuse with ResourceExhausted a call (stream or unary) of a
// uid that already has Limits.StreamsPerUID open, and close the connection
// of a stream whose send has been blocked for Limits.SendTimeout: gRPC's
// flow control holds at most a window (64 KiB) plus one message queued for
// a stream its caller does not read, and closing the connection is the only
// way to end such a send, free its goroutine and drop what is queued.
package workload
