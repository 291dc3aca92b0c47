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
// current. A remote CA gets 30 seconds to answer at start; if it does not,
// the backend still comes up and keeps trying, reporting to onHealth.
func newAuthority(cfg *config.Config, log *slog.Logger, onHealth func(error)) (ca.Authority, func(context.Context) error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch cfg.CA.Type {
	case "local":
		lc, err := local.New(local.Config{
			TrustDomain: cfg.TrustDomainID(),
			Dir:         filepath.Join(cfg.DataDir, "ca"),
			TTL:         cfg.CA.Local.TTL,
			KeyType:     cfg.CA.Local.KeyType,
			Logger:      log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("agent: %w", err)
		}
		return lc, lc.Run, nil
	case "vault":
		vc := cfg.CA.Vault
		v, err := vault.New(ctx, vault.Config{
			TrustDomain:     cfg.TrustDomainID(),
			Address:         vc.Address,
			CACertFile:      vc.CACertFile,
			Namespace:       vc.Namespace,
			PKIMount:        vc.PKIMount,
			Role:            vc.Role,
			Mode:            vault.Mode(vc.Mode),
			Auth:            vault.Auth(vc.Auth),
			BundleRefresh:   vc.BundleRefresh,
			IntermediateTTL: vc.IntermediateTTL,
			KeyType:         cfg.SVID.KeyType,
			JWT:             vault.JWTConfig(vc.JWT),
			Logger:          log,
			OnHealth:        onHealth,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("agent: %w", err)
		}
		return v, v.Run, nil
	case "stepca":
		st := cfg.CA.StepCA
		s, err := stepca.New(ctx, stepca.Config{
			TrustDomain:     cfg.TrustDomainID(),
			URL:             st.URL,
			RootFingerprint: st.RootFingerprint,
			RootFile:        st.RootFile,
			Provisioner:     st.Provisioner,
			PasswordFile:    st.PasswordFile,
			BundleRefresh:   st.BundleRefresh,
			Logger:          log,
			OnHealth:        onHealth,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("agent: %w", err)
		}
		return s, s.Run, nil
	default:
		return nil, nil, fmt.Errorf("agent: unknown CA type %q", cfg.CA.Type)
	}
}
