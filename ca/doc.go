// Package ca defines what sworn needs from a certificate authority and the
// rules every X.509-SVID it hands out must follow.
//
// An Authority signs X.509-SVIDs for keys the agent generated (the private
// key never leaves the agent) and reports the CA certificates workloads must
// trust. Backends live in sub-packages (ca/local, ca/vault) and are chosen by
// the agent with an explicit switch. Optional capabilities, such as operator
// driven CA rotation, are separate small interfaces found by type assertion.
//
// Errors carry their class (ErrUnavailable, ErrInvalidRequest,
// ErrNotSupported) so that callers at an API edge can choose a status code
// without parsing text. CheckX509SVID enforces the X.509-SVID profile; a
// backend whose signer could be misconfigured (Vault) runs every certificate
// through it before returning it.
package ca
