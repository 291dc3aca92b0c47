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
package workload
