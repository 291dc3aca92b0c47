package vault

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/ca"
)

// Mode says who signs SVIDs.
type Mode string

// Modes.
const (
	ModeSign         Mode = "sign"
	ModeIntermediate Mode = "intermediate"
)

// Auth methods.
const (
	AuthToken      = "token"
	AuthAppRole    = "approle"
	AuthKubernetes = "kubernetes"
	AuthJWT        = "jwt"
)

// Defaults.
const (
	DefaultPKIMount        = "pki"
	DefaultRole            = "sworn"
	DefaultBundleRefresh   = 30 * time.Second
	DefaultIntermediateTTL = 12 * time.Hour
)

// Config configures the Vault backend.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	// Address of Vault; empty means VAULT_ADDR.
	Address string
	// CACertFile verifies Vault's TLS certificate; empty means VAULT_CACERT
	// or the system roots.
	CACertFile string
	Namespace  string
	PKIMount   string
	Role       string
	Mode       Mode
	Auth       Auth
	// BundleRefresh is how often the issuers are re-read.
	BundleRefresh time.Duration
	// IntermediateTTL is the lifetime asked for in intermediate mode.
	IntermediateTTL time.Duration
	// KeyType of the intermediate's key.
	KeyType ca.KeyType
	// JWT enables JWT-SVIDs through the transit engine.
	JWT    JWTConfig
	Clock  clock.Clock
	Logger *slog.Logger
	// OnHealth, if set, is told after every exchange with Vault whether it
	// succeeded (nil) or Vault could not be reached.
	OnHealth func(error)
}

// Auth configures how the backend logs in to Vault.
type Auth struct {
	Method string // token, approle, kubernetes, jwt
	// TokenFile holds a Vault token (method token); empty means VAULT_TOKEN.
	TokenFile string
	// RoleID and SecretIDFile are the AppRole credentials.
	RoleID       string
	SecretIDFile string
	// Role is the kubernetes or jwt auth role.
	Role string
	// Mount is the auth method's mount path; empty means the method's name.
	Mount string
	// JWTFile is the (projected service-account) token for kubernetes and
	// jwt auth; it is read again at every login.
	JWTFile string
}

func (c *Config) setDefaults() {
	if c.PKIMount == "" {
		c.PKIMount = DefaultPKIMount
	}
	if c.Role == "" {
		c.Role = DefaultRole
	}
	if c.Mode == "" {
		c.Mode = ModeSign
	}
	if c.Auth.Method == "" {
		c.Auth.Method = AuthToken
	}
	if c.Auth.Mount == "" {
		c.Auth.Mount = c.Auth.Method
	}
	if c.BundleRefresh <= 0 {
		c.BundleRefresh = DefaultBundleRefresh
	}
	if c.IntermediateTTL <= 0 {
		c.IntermediateTTL = DefaultIntermediateTTL
	}
	if c.JWT.TransitMount == "" {
		c.JWT.TransitMount = "transit"
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	switch c.Mode {
	case "", ModeSign, ModeIntermediate:
	default:
		return fmt.Errorf("mode %q: want sign or intermediate", c.Mode)
	}
	switch c.Auth.Method {
	case "", AuthToken:
	case AuthAppRole:
		if c.Auth.RoleID == "" || c.Auth.SecretIDFile == "" {
			return fmt.Errorf("auth: approle needs role_id and secret_id_file")
		}
	case AuthKubernetes, AuthJWT:
		if c.Auth.Role == "" || c.Auth.JWTFile == "" {
			return fmt.Errorf("auth: %s needs role and jwt_file", c.Auth.Method)
		}
	default:
		return fmt.Errorf("auth: method %q: want token, approle, kubernetes or jwt", c.Auth.Method)
	}
	if c.IntermediateTTL != 0 && c.IntermediateTTL < time.Hour {
		return fmt.Errorf("intermediate_ttl %v is shorter than the 1h minimum", c.IntermediateTTL)
	}
	return nil
}
