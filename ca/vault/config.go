package vault

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/field"
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

// Defaults of the fields the agent's ca.vault section leaves unset.
const (
	DefaultPKIMount        = "pki"
	DefaultRole            = "sworn"
	DefaultMode            = ModeSign
	DefaultAuthMethod      = AuthToken
	DefaultBundleRefresh   = 30 * time.Second
	DefaultIntermediateTTL = 12 * time.Hour
	DefaultTransitMount    = "transit"
)

// Bounds of the durations Validate accepts.
const (
	MinBundleRefresh   = time.Second
	MaxBundleRefresh   = time.Hour
	MinIntermediateTTL = time.Hour
	MaxIntermediateTTL = 7 * 24 * time.Hour
)

// Config configures the Vault backend. It is also the agent's ca.vault
// section, decoded from YAML as it stands; the fields tagged yaml:"-" are
// set by the program that builds the backend, never by the file.
type Config struct {
	// Address of Vault; empty means VAULT_ADDR.
	Address string `yaml:"address"`
	// Addresses, instead of Address, lists the nodes of a Vault HA
	// cluster. Calls go to one node; when it cannot be connected to they
	// go to the next, and stay there. Any unsealed node will do: a standby
	// forwards requests to the active node.
	Addresses []string `yaml:"addresses"`
	// CACertFile verifies Vault's TLS certificate; empty means VAULT_CACERT
	// or the system roots.
	CACertFile string `yaml:"ca_cert_file"`
	Namespace  string `yaml:"namespace"`
	PKIMount   string `yaml:"pki_mount"`
	Role       string `yaml:"role"`
	Mode       Mode   `yaml:"mode"`
	Auth       Auth   `yaml:"auth"`
	// BundleRefresh is how often, at most, the issuers are re-read (each
	// wait jittered: see ca.RefreshWait).
	BundleRefresh time.Duration `yaml:"bundle_refresh"`
	// IntermediateTTL is the lifetime asked for in intermediate mode.
	IntermediateTTL time.Duration `yaml:"intermediate_ttl"`
	// JWT enables JWT-SVIDs through the transit engine.
	JWT JWTConfig `yaml:"jwt"`

	TrustDomain spiffeid.TrustDomain `yaml:"-"`
	// KeyType of the intermediate's key (the agent's svid.key_type).
	KeyType ca.KeyType   `yaml:"-"`
	Clock   clock.Clock  `yaml:"-"`
	Logger  *slog.Logger `yaml:"-"`
	// Rand draws the refresh jitter, uniform in [0, 1); default
	// math/rand/v2.
	Rand func() float64 `yaml:"-"`
	// OnHealth, if set, is told after every exchange with Vault whether it
	// succeeded (nil) or Vault could not be reached.
	OnHealth func(error) `yaml:"-"`
}

// Auth configures how the backend logs in to Vault.
type Auth struct {
	Method string `yaml:"method"` // token, approle, kubernetes, jwt
	// TokenFile holds a Vault token (method token); empty means VAULT_TOKEN.
	TokenFile string `yaml:"token_file"`
	// RoleID and SecretIDFile are the AppRole credentials.
	RoleID       string `yaml:"role_id"`
	SecretIDFile string `yaml:"secret_id_file"`
	// Role is the kubernetes or jwt auth role.
	Role string `yaml:"role"`
	// Mount is the auth method's mount path; empty means the method's name.
	Mount string `yaml:"mount"`
	// JWTFile is the (projected service-account) token for kubernetes and
	// jwt auth; it is read again at every login.
	JWTFile string `yaml:"jwt_file"`
}

// ApplyDefaults fills in the unset fields the file can set (not Mount or
// the transit mount, which default at New to names derived from others,
// nor the runtime fields). A negative duration is left for Validate to
// refuse rather than silently replaced.
func (c *Config) ApplyDefaults() {
	field.Default(&c.PKIMount, DefaultPKIMount)
	field.Default(&c.Role, DefaultRole)
	field.Default(&c.Mode, DefaultMode)
	field.Default(&c.Auth.Method, DefaultAuthMethod)
	field.Default(&c.BundleRefresh, DefaultBundleRefresh)
	field.Default(&c.IntermediateTTL, DefaultIntermediateTTL)
}

// setDefaults completes a validated Config for New.
func (c *Config) setDefaults() {
	c.ApplyDefaults()
	field.Default(&c.Auth.Mount, c.Auth.Method)
	field.Default(&c.JWT.TransitMount, DefaultTransitMount)
	field.Default[clock.Clock](&c.Clock, clock.RealClock{})
	field.Default(&c.Logger, slog.New(slog.DiscardHandler))
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
}

// Validate reports every problem with the configuration as New would use
// it (unset fields take their defaults), as a field.List whose paths are
// the YAML keys under ca.vault, in a fixed order. An empty Address (with
// no Addresses) or token file is accepted only if VAULT_ADDR or
// VAULT_TOKEN is set.
func (c *Config) Validate() error {
	d := *c
	d.ApplyDefaults()
	var errs field.List
	switch {
	case d.Address != "" && len(d.Addresses) > 0:
		errs.Add(errors.New("set address or addresses, not both"), "addresses")
	case len(d.Addresses) > 0:
		for i, a := range d.Addresses {
			errs.Add(field.HTTP(a), "addresses", strconv.Itoa(i))
		}
	case d.Address == "" && os.Getenv("VAULT_ADDR") == "":
		errs.Add(errors.New("is required (or set VAULT_ADDR)"), "address")
	case d.Address != "":
		errs.Add(field.HTTP(d.Address), "address")
	}
	errs.Add(field.OneOf(d.Mode, ModeSign, ModeIntermediate), "mode")
	errs.Add(field.Duration(d.BundleRefresh, MinBundleRefresh, MaxBundleRefresh), "bundle_refresh")
	errs.Add(field.Duration(d.IntermediateTTL, MinIntermediateTTL, MaxIntermediateTTL), "intermediate_ttl")
	for _, f := range []struct {
		path  string
		parts []string
	}{
		{d.CACertFile, []string{"ca_cert_file"}},
		{d.Auth.TokenFile, []string{"auth", "token_file"}},
		{d.Auth.SecretIDFile, []string{"auth", "secret_id_file"}},
		{d.Auth.JWTFile, []string{"auth", "jwt_file"}},
	} {
		if f.path != "" {
			errs.Add(field.Absolute(f.path), f.parts...)
		}
	}
	errs = append(errs, d.Auth.validate().Prefix("auth")...)
	return errs.Err()
}

// validate checks that the method has its credentials.
func (a Auth) validate() field.List {
	var errs field.List
	switch a.Method {
	case AuthToken:
		if a.TokenFile == "" && os.Getenv("VAULT_TOKEN") == "" {
			errs.Add(errors.New("token auth needs auth.token_file or VAULT_TOKEN"), "method")
		}
	case AuthAppRole:
		if a.RoleID == "" {
			errs.Add(errors.New("is required for approle auth"), "role_id")
		}
		if a.SecretIDFile == "" {
			errs.Add(errors.New("is required for approle auth"), "secret_id_file")
		}
	case AuthKubernetes, AuthJWT:
		if a.Role == "" {
			errs.Add(fmt.Errorf("is required for %s auth", a.Method), "role")
		}
		if a.JWTFile == "" {
			errs.Add(fmt.Errorf("is required for %s auth (the projected service-account token)", a.Method), "jwt_file")
		}
	default:
		errs.Add(field.OneOf(a.Method, AuthToken, AuthAppRole, AuthKubernetes, AuthJWT), "method")
	}
	return errs
}
