package trust

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/sworn-id/sworn/internal/filewatch"
)

// ErrNotAuthorized is wrapped by the error a Guard's authorizer returns for
// a peer its policy refuses.
var ErrNotAuthorized = errors.New("trust: peer not authorized")

// Guard applies the policy in force to every TLS handshake. Replacing the
// policy affects the next handshake; open connections are left alone.
type Guard struct {
	policy  atomic.Pointer[Policy]
	observe func(Decision)
	http    bool
}

// GuardOption configures a Guard.
type GuardOption func(*Guard)

// WithObserver calls f with every decision (peer ID, allowed or not, the
// rule that decided), e.g. to log or count it.
func WithObserver(f func(Decision)) GuardOption {
	return func(g *Guard) { g.observe = f }
}

// ForHTTP makes the Guard admit, at the handshake, every peer that an HTTP
// rule could allow some request (Policy.ForConnections); requests are then
// checked one by one with Policy.DecideHTTP.
func ForHTTP() GuardOption {
	return func(g *Guard) { g.http = true }
}

// NewGuard returns a Guard enforcing p.
func NewGuard(p *Policy, opts ...GuardOption) *Guard {
	g := &Guard{observe: func(Decision) {}}
	for _, o := range opts {
		o(g)
	}
	g.policy.Store(p)
	return g
}

// Policy returns the policy in force.
func (g *Guard) Policy() *Policy { return g.policy.Load() }

// SetPolicy replaces the policy in force.
func (g *Guard) SetPolicy(p *Policy) { g.policy.Store(p) }

// Decide checks a peer against the policy in force and reports the
// decision to the observer.
func (g *Guard) Decide(id spiffeid.ID) Decision {
	p := g.Policy()
	if g.http {
		p = p.ForConnections()
	}
	d := p.Decide(id)
	g.observe(d)
	return d
}

// Authorizer returns a go-spiffe authorizer that applies the policy in
// force at each handshake.
func (g *Guard) Authorizer() tlsconfig.Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if d := g.Decide(id); !d.Allowed {
			return fmt.Errorf("%w: %s (%s)", ErrNotAuthorized, id, d.Rule)
		}
		return nil
	}
}

// Source is what the TLS configs need: the local SVID and the bundles to
// verify peers with. go-spiffe's workloadapi.X509Source is one, and as it
// follows the Workload API, a rotated SVID or bundle is used from the next
// handshake on.
type Source interface {
	x509svid.Source
	x509bundle.Source
}

// ServerConfig returns a TLS server config that presents src's SVID,
// requires a client SVID that verifies against src's bundles, and admits
// only clients g allows.
func ServerConfig(src Source, g *Guard) *tls.Config {
	return tlsconfig.MTLSServerConfig(src, src, g.Authorizer())
}

// ClientConfig returns a TLS client config that presents src's SVID and
// accepts only servers whose SVID verifies against src's bundles and that g
// allows.
func ClientConfig(src Source, g *Guard) *tls.Config {
	return tlsconfig.MTLSClientConfig(src, src, g.Authorizer())
}

// WatchPolicyFile reads path again whenever it changes (including the
// symlink swap Kubernetes does for ConfigMaps), checking every interval,
// until ctx ends, and hands each new policy to onChange (typically a
// Guard's SetPolicy). A file that does not parse goes to onError instead,
// so the policy in force stays.
func WatchPolicyFile(ctx context.Context, path string, interval time.Duration, onChange func(*Policy), onError func(error)) {
	filewatch.Watch(ctx, path, interval, func(data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			onError(fmt.Errorf("%s: %w", path, err))
			return
		}
		onChange(p)
	}, onError)
}

// LoadPolicy reads a YAML policy file.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
