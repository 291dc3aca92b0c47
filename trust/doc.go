// Package trust holds what a workload trusts: X.509 bundles for its own trust
// domain and for federated ones.
//
// Store is safe for concurrent use. Every change bumps a sequence number and
// closes the channel returned by Changed, so a subscriber that re-reads the
// Snapshot after each close never misses the latest state and never polls.
// Setting a bundle to the certificates it already has is not a change.
//
// It is also the mTLS helper for workloads. A Policy (allow and deny
// Patterns, optional per-request HTTP rules) says which peers may connect;
// deny wins and an empty policy admits nobody. A Guard holds the policy in
// force (swapped atomically, e.g. by WatchPolicyFile) and turns it into a
// go-spiffe Authorizer, reporting every decision to an observer;
// ServerConfig and ClientConfig build mutual-TLS configs from a
// workloadapi.X509Source and a Guard, so a rotated SVID or bundle, or a new
// policy, applies from the next handshake without touching open
// connections. WriteSVIDFiles writes an SVID and bundle to disk atomically.
//
// HTTP rules are matched against CanonicalPath of the request target, never
// the raw path: a target with dot segments (raw, escaped or as "..;"),
// an escaped / or %, a \, control characters or invalid UTF-8 is refused,
// and empty segments are merged, so a caller that forwards the canonical
// path (Decision.Path) gives the backend exactly what was decided on.
//
// The package imports go-spiffe (and the YAML decoder go-spiffe's module
// already brings) and nothing of the agent, so a workload can use it alone.
package trust
