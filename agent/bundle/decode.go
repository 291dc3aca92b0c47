package bundle

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ErrInvalid is the class of every bundle refused for what it holds
// (empty, garbled, truncated, over a limit, another trust domain's CA):
// the sender's to fix, never the agent's. Test with errors.Is.
var ErrInvalid = errors.New("bundle: invalid bundle")

// ErrNotFederated is the class of a bundle given for a trust domain the
// agent does not federate with.
var ErrNotFederated = errors.New("bundle: trust domain not federated")

// invalid marks err as ErrInvalid without changing its text.
type invalid struct{ error }

func (e invalid) Unwrap() error      { return e.error }
func (invalid) Is(target error) bool { return target == ErrInvalid }

// Decode reads a bundle an operator gives (`sworn bundle set`, bundle_file,
// the copy the agent stored): SPIFFE bundle JSON or PEM CA certificates.
// Besides what Parse refuses, it refuses what would silently empty or shrink
// a trust domain's bundle: no content at all, no X.509 authority, a PEM
// block that does not decode (a truncated or garbled file), a PEM block
// that is not a CERTIFICATE, and data after the last block. go-spiffe's
// x509bundle.Parse takes an empty file as an empty bundle and skips what it
// cannot read, which is why this does not use it.
func Decode(td spiffeid.TrustDomain, data []byte) (*spiffebundle.Bundle, error) {
	b, err := decode(td, data)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w; %s", err, want(td))
	}
	return b, nil
}

// Load reads path (at most MaxBytes) and decodes it as Decode does; every
// error names path.
func Load(td spiffeid.TrustDomain, path string) (*spiffebundle.Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("bundle: %s: %w", path, err)
	}
	b, err := decode(td, data)
	if err != nil {
		return nil, fmt.Errorf("bundle: %s: %w; %s", path, err, want(td))
	}
	return b, nil
}

// StatesJWT reports whether data is in a format that states JWT
// authorities (SPIFFE bundle JSON), as opposed to PEM, which cannot carry
// them: a PEM bundle says nothing about a trust domain's JWT keys.
func StatesJWT(data []byte) bool {
	trimmed := bytes.TrimSpace(data)
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// want says what to give instead.
func want(td spiffeid.TrustDomain) string {
	return fmt.Sprintf("give SPIFFE bundle JSON (as `sworn bundle fetch` prints it) or PEM CA certificates of %s", td)
}

func decode(td spiffeid.TrustDomain, data []byte) (*spiffebundle.Bundle, error) {
	trimmed := bytes.TrimSpace(data)
	if err := checkSize(td, data); err != nil {
		return nil, err
	}
	var b *spiffebundle.Bundle
	var err error
	switch {
	case len(trimmed) == 0:
		return nil, invalid{fmt.Errorf("bundle for %s is empty; refused", td)}
	case StatesJWT(trimmed):
		b, err = parseJSON(td, data)
	default:
		b, err = parsePEM(td, data)
	}
	if err != nil {
		return nil, err
	}
	if len(b.X509Authorities()) == 0 {
		// It would make every workload distrust the trust domain, as the
		// watcher's refusal of such an answer says.
		return nil, invalid{fmt.Errorf("bundle for %s holds no X.509 authority; refused", td)}
	}
	return b, nil
}

// parsePEM reads CERTIFICATE blocks. pem.Decode skips what it cannot
// decode up to the next block, so a garbled or truncated block is found by
// counting the markers: every BEGIN and END must belong to a decoded block.
// Text before or between blocks (openssl's "subject=" lines) is allowed.
func parsePEM(td spiffeid.TrustDomain, data []byte) (*spiffebundle.Bundle, error) {
	b := spiffebundle.New(td)
	rest, n := data, 0
	for {
		block, next := pem.Decode(rest)
		if block == nil {
			break
		}
		n++
		if block.Type != "CERTIFICATE" {
			return nil, invalid{fmt.Errorf("bundle for %s: PEM block %d is a %s, not a CERTIFICATE; refused", td, n, block.Type)}
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, invalid{fmt.Errorf("bundle for %s: certificate %d: %w", td, n, err)}
		}
		b.AddX509Authority(cert)
		rest = next
	}
	switch {
	case bytes.Count(data, []byte("-----BEGIN ")) != n || bytes.Count(data, []byte("-----END ")) != n:
		return nil, invalid{fmt.Errorf("bundle for %s has a PEM block that does not decode (a truncated or garbled file?); refused", td)}
	case n == 0:
		return nil, invalid{fmt.Errorf("bundle for %s is neither SPIFFE bundle JSON nor PEM; refused", td)}
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, invalid{fmt.Errorf("bundle for %s has data after its last PEM block (a truncated or garbled file?); refused", td)}
	}
	if err := checkLimits(td, b); err != nil {
		return nil, err
	}
	return b, nil
}
