package bundle

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// EndpointHandler serves td's bundle from store at "/" as a SPIFFE bundle
// endpoint does.
func EndpointHandler(td spiffeid.TrustDomain, store *Store, refreshHint time.Duration) (http.Handler, error) {
	src := spiffeSource(func(want spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
		b, ok := store.Snapshot().SPIFFEBundle(want, refreshHint)
		if !ok {
			return nil, fmt.Errorf("bundle: no bundle for %s", want)
		}
		return b, nil
	})
	h, err := federation.NewHandler(td, src)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return h, nil
}

type spiffeSource func(spiffeid.TrustDomain) (*spiffebundle.Bundle, error)

func (f spiffeSource) GetBundleForTrustDomain(td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	return f(td)
}
