package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Error classes. Backends wrap one of these so callers can use errors.Is.
var (
	// ErrUnavailable means the CA could not be reached or did not answer;
	// the request may succeed later.
	ErrUnavailable = errors.New("ca: unavailable")
	// ErrRefused means the CA answered and turned the agent away: its
	// credentials were rejected or its policy does not allow the call.
	// Unlike ErrUnavailable, waiting does not help; an operator must fix
	// the credentials or the policy.
	ErrRefused = errors.New("ca: refused")
	// ErrInvalidRequest means the request can never succeed as made.
	ErrInvalidRequest = errors.New("ca: invalid request")
	// ErrNotSupported means the backend does not offer the operation.
	ErrNotSupported = errors.New("ca: not supported")
	// ErrBadCertificate means the CA returned a certificate that breaks the
	// X.509-SVID profile; it was not handed out.
	ErrBadCertificate = errors.New("ca: certificate violates the X.509-SVID profile")
	// ErrBadSignature means the CA returned a signature that does not
	// verify with the key it names; the token was not handed out.
	ErrBadSignature = errors.New("ca: signature does not verify")
	// ErrExpired means the CA that would sign has expired, is not valid
	// yet, or is too close to its end: nothing was signed, since an SVID
	// must never outlive or predate its issuer. The Vault backend refuses
	// unless the issuer covers the full TTL (a shortened SVID would be
	// renewed sooner and sooner as the end nears); SignLeaf (the embedded
	// CA, Vault's intermediate mode) refuses with under MinIssuerLife left
	// and otherwise ends the SVID with its issuer. Waiting does not help;
	// an operator must rotate the CA (or lower the SVID TTL). Callers retry
	// with backoff, as for any error.
	ErrExpired = errors.New("ca: CA cannot cover a full SVID lifetime")
)

// X509SVIDRequest asks for an X.509-SVID.
type X509SVIDRequest struct {
	ID spiffeid.ID
	// Key is the SVID's key pair. Backends use its public half, and may sign
	// a CSR with it; the private key is never sent anywhere.
	Key crypto.Signer
	// TTL is the requested lifetime; the CA may shorten it (never past its
	// own NotAfter).
	TTL      time.Duration
	DNSNames []string
}

// Authority issues X.509-SVIDs.
type Authority interface {
	// SignX509SVID returns the SVID's chain, leaf first, without the root.
	SignX509SVID(ctx context.Context, req X509SVIDRequest) ([]*x509.Certificate, error)
	// Authorities returns what workloads must trust right now.
	Authorities() Authorities
	// Changed returns a channel that is closed at the next change of
	// Authorities (a new CA published, one activated, or an old one dropped).
	Changed() <-chan struct{}
}

// Authorities is a snapshot of a CA's trust state.
type Authorities struct {
	// X509 holds every CA certificate workloads must trust: the one that
	// signs, any published ahead of activation and any retired one that
	// still has valid SVIDs.
	X509 []*x509.Certificate
	// Signing identifies the CA that signs new SVIDs; a change means every
	// SVID should be re-issued. Empty when the backend cannot tell.
	Signing string
	// JWT holds, by key ID, every key that may have signed a JWT-SVID still
	// valid, and any published ahead of use. Empty if the backend has no
	// JWT signer.
	JWT map[string]crypto.PublicKey
}

// JWTSVIDRequest asks for a JWT-SVID.
type JWTSVIDRequest struct {
	ID       spiffeid.ID
	Audience []string
	// TTL is the requested lifetime; the signer may shorten it (never past
	// its key's validity).
	TTL time.Duration
	// Issuer, when set, is the token's iss claim: the OIDC issuer that
	// verifiers using discovery (Vault, AWS STS, GCP) require. Empty
	// leaves iss out, as the JWT-SVID spec does.
	Issuer string
}

// JWTSigner is implemented by backends that issue JWT-SVIDs.
type JWTSigner interface {
	// SignJWTSVID returns a compact JWS whose header has only alg, kid and
	// typ, and whose claims are sub, aud, exp and iat, and iss when
	// req.Issuer is set.
	SignJWTSVID(ctx context.Context, req JWTSVIDRequest) (token string, expiry time.Time, err error)
}

// Rotator is implemented by backends whose CA sworn can rotate.
type Rotator interface {
	// PrepareCA publishes a new CA that is trusted but does not sign yet.
	PrepareCA(ctx context.Context) (Info, error)
	// ActivateCA makes the prepared CA the signing one.
	ActivateCA(ctx context.Context) (Info, error)
}

// Describer is implemented by backends that can list their CAs.
type Describer interface {
	DescribeCAs(ctx context.Context) ([]Info, error)
}

// State of a CA certificate in a rotation.
type State string

// States of a CA, in the order a CA passes through them.
const (
	StatePrepared State = "prepared" // trusted, not signing yet
	StateActive   State = "active"   // signing
	StateOld      State = "old"      // no longer signing; trusted until it expires or is retired
)

// Info describes one CA certificate.
type Info struct {
	ID          string // backend-specific reference, e.g. a serial or issuer ID
	State       State
	Certificate *x509.Certificate
}
