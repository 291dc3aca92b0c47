// Package ca defines what sworn needs from a certificate authority and the
// rules every X.509-SVID it hands out must follow.
//
// An Authority signs X.509-SVIDs for keys the agent generated (the private
// key never leaves the agent) and reports the CA certificates workloads must
// trust. Backends live in sub-packages (ca/vault, ca/stepca, ca/local), each
// owning its config, defaults and validation, and are chosen by the agent
// with an explicit switch. Optional capabilities, such as operator
// driven CA rotation, are separate small interfaces found by type assertion.
//
// Words, used in one sense each: an Authority is a CA backend; its
// Authorities are the trust anchors it publishes (go-spiffe's sense of
// "authorities": the CA certificates and JWT keys a bundle holds); ca/local
// calls one of its CA key pairs with its period of use a generation.
//
// Errors carry their class (ErrUnavailable, ErrRefused, ErrInvalidRequest,
// ErrNotSupported, ErrBadCertificate, ErrBadSignature, ErrExpired) so that
// callers at an API edge can choose a status code, and operators a fix,
// without parsing text: an unreachable CA is waited out, a refusal needs an
// operator to fix credentials or policy, and a CA that has expired or is
// too close to its end (ErrExpired) needs an operator to rotate it; a
// backend reports that class instead of signing an SVID that outlives its
// issuer. CheckX509SVID enforces the X.509-SVID profile; a
// backend whose signer could be misconfigured (Vault) runs every
// certificate through it before returning it. Backends that re-read their
// trust anchors on a timer (Vault, step-ca) draw each wait from RefreshWait,
// so a fleet's agents never read the CA, nor see a new one, all at once.
package ca
