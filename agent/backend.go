package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/ca/stepca"
	"github.com/sworn-id/sworn/ca/vault"
)

// newAuthority builds the configured CA backend and the loop that keeps it
// current. The file's section already is the backend's Config; only the
// fields no file sets are filled in here, on a copy. A remote CA gets 30
// seconds to answer at start; if it does not, the backend still comes up
// and keeps trying. Every backend reports its health to onHealth (the
// embedded CA: whether a CA can still sign once its successor failed).
func newAuthority(cfg *config.Config, log *slog.Logger, onHealth func(error)) (ca.Authority, func(context.Context) error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch cfg.CA.Type {
	case "local":
		lc := cfg.CA.Local
		lc.TrustDomain, lc.Dir, lc.Logger, lc.OnHealth = cfg.TrustDomainID(), filepath.Join(cfg.DataDir, "ca"), log, onHealth
		c, err := local.New(lc)
		if err != nil {
			return nil, nil, fmt.Errorf("agent: %w", err)
		}
		return c, c.Run, nil
	case "vault":
		vc := cfg.CA.Vault
		vc.TrustDomain, vc.KeyType, vc.Logger, vc.OnHealth = cfg.TrustDomainID(), cfg.SVID.KeyType, log, onHealth
		v, err := vault.New(ctx, vc)
		if err != nil {
			return nil, nil, fmt.Errorf("agent: %w", err)
		}
		return v, v.Run, nil
	case "stepca":
		sc := cfg.CA.StepCA
		sc.TrustDomain, sc.Logger, sc.OnHealth = cfg.TrustDomainID(), log, onHealth
		s, err := stepca.New(ctx, sc)
		if err != nil {
			return nil, nil, fmt.Errorf("agent: %w", err)
		}
		return s, s.Run, nil
	default:
		return nil, nil, fmt.Errorf("agent: unknown CA type %q", cfg.CA.Type)
	}
}
