// Package local is sworn's embedded certificate authority, for a single
// machine and for trying sworn out. Production clusters use ca/vault.
//
// It keeps a self-signed root per rotation period. Keys are PKCS#8, stored
// in the configured directory in files of mode 0600 written by atomic rename,
// and reused after a restart.
//
// Rotation keeps an overlap so no workload ever sees an SVID its bundle
// cannot verify:
//   - at half the active CA's life a successor is prepared: it is published
//     in Authorities at once but signs nothing;
//   - at five sixths of that life (or when an operator calls ActivateCA) the
//     successor becomes the signing CA and the old one is retired;
//   - a retired CA stays in Authorities until its NotAfter. SVIDs are never
//     issued past their CA's NotAfter, so by then every SVID it signed has
//     expired.
//
// A CA signs only within its validity and with ca.MinIssuerLife left; a
// leaf lies within its CA's validity (ca.SignLeaf). When a successor
// cannot be written (data dir read-only or full), Run retries with a
// backoff from a second to a minute, logs what to do, and reports it
// through Health and Config.OnHealth; once the active CA expires every
// signature is refused with ca.ErrUnavailable saying so, never with an
// SVID that does not chain.
//
// Loading refuses, naming the file, a CA file whose private key is not its
// certificate's, whose certificate is not self-signed by that key, whose
// JWT key is not EC P-256, or whose name is not ca-<SubjectKeyId>.pem:
// such a CA would load and then fail every signature. When state.json is
// missing or names no live CA while live CAs are on disk, the newest of
// them (published before, so trusted by workloads) is activated with a
// warning naming the file, rather than a new CA nobody trusts yet; a
// prepared CA is activated in preference. When no live CA is left in a
// directory that held one (a lost CA file, an agent off past the CA's
// life), a new CA is published a minute before it signs, with a warning
// naming what was missing; so is one an operator prepares (PrepareCA)
// while no CA is active, and ActivateCA refuses to cut that minute short.
// That
// the directory holds only what the agent wrote is for the caller to
// check (the agent does, with agent/secpath).
//
// Every CA certificate carries the URI SAN spiffe://<trust-domain> and a URI
// name constraint to the trust domain, so a verifier that honours name
// constraints refuses anything it might sign for another trust domain.
//
// Config's ttl and key_type are also the agent's ca.local section: their
// defaults (ApplyDefaults) and the bounds a file may set (Validate) live
// here. New accepts a TTL down to an hour, shorter than a file may ask
// for, so tests can watch rotations in a few fake hours.
package local
