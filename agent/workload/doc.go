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
