package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca/vault"
)

// vaultFlags are shared by the commands that talk to Vault as the operator
// (VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT and the rest of the vault CLI's
// environment).
type vaultFlags struct {
	mount string
	role  string
}

func (v *vaultFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&v.mount, "pki-mount", vault.DefaultPKIMount, "the PKI secrets engine's mount path")
	cmd.Flags().StringVar(&v.role, "role", vault.DefaultRole, "the PKI role agents sign with")
}

func (v *vaultFlags) admin() (*vault.Admin, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	if c.Token() == "" {
		return nil, errors.New("no Vault token: set VAULT_TOKEN (as for the vault CLI)")
	}
	return vault.NewAdmin(c, v.mount, v.role), nil
}

type vaultSetupOptions struct {
	vaultFlags
	trustDomain      string
	kubernetesCAFile string
	reviewerJWTFile  string
	o                vault.SetupOptions
}

func newVaultCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "vault", Short: "Prepare HashiCorp Vault to be sworn's CA"}
	o := &vaultSetupOptions{}
	setup := &cobra.Command{
		Use:   "setup",
		Short: "Idempotently set up a PKI mount, root, role, agent policy and auth role for sworn",
		Long: `Set up Vault for sworn, idempotently: enable the PKI secrets engine at --pki-mount
(or tune it), create a root issuer unless one exists, write a role that yields
SPIFFE-correct leaves (URI SANs only under spiffe://<td>/, no CN, serverAuth and
clientAuth, not stored), a least-privilege policy for agents and, optionally, an
auth role bound to it. Uses VAULT_ADDR and VAULT_TOKEN like the vault CLI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			td, err := spiffeid.TrustDomainFromString(o.trustDomain)
			if err != nil {
				return fmt.Errorf("--trust-domain: %w", err)
			}
			o.o.TrustDomain = td
			if o.kubernetesCAFile != "" {
				pem, err := os.ReadFile(o.kubernetesCAFile)
				if err != nil {
					return fmt.Errorf("--kubernetes-ca-file: %w", err)
				}
				o.o.KubernetesCACert = string(pem)
			}
			if o.reviewerJWTFile != "" {
				jwt, err := os.ReadFile(o.reviewerJWTFile)
				if err != nil {
					return fmt.Errorf("--kubernetes-reviewer-jwt-file: %w", err)
				}
				o.o.KubernetesReviewerJWT = strings.TrimSpace(string(jwt))
			}
			admin, err := o.admin()
			if err != nil {
				return err
			}
			did, err := admin.Setup(cmd.Context(), o.o)
			for _, line := range did {
				fmt.Fprintln(cmd.OutOrStdout(), "-", line)
			}
			return err
		},
	}
	o.add(setup)
	f := setup.Flags()
	f.StringVar(&o.trustDomain, "trust-domain", "", "the trust domain (required)")
	f.DurationVar(&o.o.RootTTL, "root-ttl", vault.DefaultRootTTL, "lifetime of a root created here")
	f.DurationVar(&o.o.MaxSVIDTTL, "max-svid-ttl", vault.DefaultMaxSVIDTTL, "longest SVID the role signs")
	f.StringSliceVar(&o.o.AllowedDNSDomains, "allowed-dns-domain", nil, "DNS domain rules may put in SVIDs (repeatable; none by default)")
	f.StringVar(&o.o.Policy, "policy", vault.DefaultPolicy, "name of the agents' policy")
	f.BoolVar(&o.o.Intermediate, "intermediate", false, "also let agents obtain intermediates (ca.vault.mode: intermediate)")
	f.StringVar(&o.o.AuthMethod, "auth-method", "", "create an auth role: approle, kubernetes or jwt")
	f.StringVar(&o.o.AuthMount, "auth-mount", "", "the auth method's mount path (default: the method's name)")
	f.StringVar(&o.o.AuthRole, "auth-role", vault.DefaultAuthRole, "name of the auth role")
	f.StringVar(&o.o.BoundServiceAccount, "bound-service-account", "", "NAMESPACE/NAME of the agents' service account (kubernetes, jwt)")
	f.StringVar(&o.o.Audience, "audience", "vault", "audience of the agents' service-account tokens (kubernetes, jwt)")
	f.DurationVar(&o.o.TokenTTL, "token-ttl", vault.DefaultTokenTTL, "TTL of tokens the auth role issues")
	f.StringVar(&o.o.JWTTransitKey, "jwt-transit-key", "", "create (or use) this transit key for JWT-SVIDs and let agents sign with it")
	f.StringVar(&o.o.JWTTransitMount, "jwt-transit-mount", vault.DefaultTransitMount, "the transit engine's mount path")
	f.StringVar(&o.o.KubernetesHost, "kubernetes-host", "", "kubernetes auth: the API server Vault sends TokenReviews to")
	f.StringVar(&o.kubernetesCAFile, "kubernetes-ca-file", "", "kubernetes auth: CA file that verifies the API server")
	f.StringVar(&o.reviewerJWTFile, "kubernetes-reviewer-jwt-file", "", "kubernetes auth: token of a service account bound to system:auth-delegator, for Vault's TokenReviews")
	_ = setup.MarkFlagRequired("trust-domain")
	cmd.AddCommand(setup)
	return cmd
}
