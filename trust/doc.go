// Package trust holds what a workload trusts: X.509 bundles for its own trust
// domain and for federated ones.
//
// Store is safe for concurrent use. Every change bumps a sequence number and
// closes the channel returned by Changed, so a subscriber that re-reads the
// Snapshot after each close never misses the latest state and never polls.
// Setting a bundle to the certificates it already has is not a change.
//
// The package imports go-spiffe only, so a workload can use it without
// pulling in the agent.
package trust
