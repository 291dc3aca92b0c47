// Package agent wires the node agent together and runs it: the CA backend,
// the trust bundle store, the rule registry, the SVID cache and its
// rotation, the Workload API on its Unix socket, the admin API on a
// separate root-only socket, and the health and metrics endpoint.
//
// Files: New refuses to start when anyone but root or the agent's uid could
// have written the data dir, anything in it or a directory above it
// (agent/secpath says exactly what is checked), since the CA keys, CA state,
// persisted SVIDs and bundles are taken from there. Directories it creates
// for sockets and above the data dir are 0755, and it warns when other
// users cannot reach the workload socket. An agent holds an exclusive lock
// on <data_dir>/lock from New until Run returns (or Close): a second agent
// on the same data dir is refused, naming the holder's pid, before it
// writes anything there. With the lock held, New removes the temp files an
// interrupted atomic write left in the data dir. A last known bundle that
// cannot be read is logged as an error naming the file, and persisted
// SVIDs are then verified against the anchors kept in their own files
// (agent/cache), never deleted for want of a bundle.
//
// Lifecycle guarantees: Run serves until its context ends, then ends every
// Workload API stream cleanly, stops the gRPC servers gracefully and
// returns nil; when one of its tasks fails it shuts down in the same order
// and returns that error (Run's comment gives the order). Reload swaps the
// rules atomically and every open stream re-matches at once. Sub-packages
// own the pieces; this package owns only their order and the links between
// them (a CA change is published to the bundle store, and a change of
// signing CA re-issues every SVID).
//
// CA health: /ready and the log tell a CA that cannot be reached
// (ca.ErrUnavailable: wait, or fix the network) from one that answered and
// refused the agent (ca.ErrRefused: fix the credentials or the CA's
// policy); sworn_ca_reachable is 0 only for the first. Cached SVIDs are
// served in both cases.
package agent
