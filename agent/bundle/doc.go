// Package bundle holds the agent's trust bundles: the Store that the
// Workload API serves them from, the Federation watcher that keeps a
// foreign trust domain's bundle fresh from its bundle endpoint, and the
// handler that serves this trust domain's bundle as such an endpoint.
//
// Store is safe for concurrent use. Every change bumps a sequence number
// and closes the channel returned by Changed, so a subscriber that
// re-reads the Snapshot after each close never misses the latest state and
// never polls. Setting a bundle to the authorities it already has is not a
// change.
//
// A foreign bundle endpoint is another organisation's server, or one an
// attacker took over. Every foreign bundle the agent takes in goes through
// Fetch or Parse (the watcher, `sworn bundle fetch`) or Decode and Load
// (`sworn bundle set`, bundle_file, the stored copy): an answer that is not 200, is
// larger than MaxBytes, holds more than MaxAuthorities authorities or
// holds a CA whose SPIFFE URI SAN names another trust domain is refused;
// redirects are not followed and one fetch is bounded by a timeout. A Federation
// keeps the last good bundle when a fetch fails or is refused, never
// empties a trust domain, and clamps the peer's refresh hint to
// [MinRefresh, MaxRefresh].
//
// An operator's file replaces a trust domain's bundle for every workload,
// so Decode also refuses what would empty or shrink it unnoticed: an empty
// file, one with no X.509 authority, a PEM block that does not decode (a
// truncated or garbled file), a PEM block that is not a certificate, data
// after the last block. Its refusals are of class ErrInvalid and say what
// to give instead; Load's name the file.
//
// Workloads do not import this package; what they need is in trust.
package bundle
