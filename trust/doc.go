// Package trust is the mTLS helper a workload imports. A Policy (allow and
// deny Patterns, optional per-request HTTP rules) says which peers may
// connect; deny wins and an empty policy admits nobody. A Guard holds the
// policy in force (swapped atomically, e.g. by WatchPolicyFile) and turns
// it into a go-spiffe Authorizer, reporting every decision to an observer;
// ServerConfig and ClientConfig build mutual-TLS configs from a
// workloadapi.X509Source and a Guard, so a rotated SVID or bundle, or a new
// policy, applies from the next handshake without touching open
// connections. WriteSVIDFiles writes an SVID and bundle to disk
// atomically, the key exactly 0600 whatever the file it replaces was.
//
// HTTP rules are matched against CanonicalPath of the request target, never
// the raw path: a target with dot segments (raw, escaped or as "..;"),
// an escaped / or %, a \, control characters or invalid UTF-8 is refused,
// and empty segments are merged, so a caller that forwards the canonical
// path (Decision.Path) gives the backend exactly what was decided on.
//
// The package imports go-spiffe (and the YAML decoder go-spiffe's module
// already brings) and, of this module, only internal/filewatch: nothing of
// the agent, so a workload can use it alone. The agent's bundle store and
// federation live in agent/bundle.
package trust
