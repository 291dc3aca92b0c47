package stepca

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/internal/field"
)

// DefaultBundleRefresh is how often the roots are re-read unless the
// configuration says otherwise.
const DefaultBundleRefresh = 30 * time.Second

// Bounds of bundle_refresh.
const (
	MinBundleRefresh = time.Second
	MaxBundleRefresh = time.Hour
)

// Config configures the step-ca backend. It is also the agent's ca.stepca
// section, decoded from YAML as it stands; the fields tagged yaml:"-" are
// set by the program that builds the backend, never by the file.
type Config struct {
	URL string `yaml:"url"`
	// RootFingerprint (hex SHA-256) or RootFile pins step-ca's root.
	RootFingerprint string `yaml:"root_fingerprint"`
	RootFile        string `yaml:"root_file"`
	// Provisioner is the JWK provisioner's name; PasswordFile decrypts its
	// key and is read again at every (re)load.
	Provisioner  string `yaml:"provisioner"`
	PasswordFile string `yaml:"provisioner_password_file"`
	// BundleRefresh is how often, at most, the roots are re-read (each
	// wait jittered: see ca.RefreshWait); 0 means DefaultBundleRefresh.
	BundleRefresh time.Duration `yaml:"bundle_refresh"`

	TrustDomain spiffeid.TrustDomain `yaml:"-"`
	Clock       clock.Clock          `yaml:"-"`
	Logger      *slog.Logger         `yaml:"-"`
	// Rand draws the refresh jitter, uniform in [0, 1); default
	// math/rand/v2.
	Rand func() float64 `yaml:"-"`
	// OnHealth, if set, is told after every exchange with step-ca whether
	// it succeeded (nil) or step-ca could not be reached.
	OnHealth func(error) `yaml:"-"`
}

// ApplyDefaults fills in the unset fields the file can set. A negative
// BundleRefresh is left for Validate to refuse.
func (c *Config) ApplyDefaults() {
	field.Default(&c.BundleRefresh, DefaultBundleRefresh)
}

// Validate reports every problem with the configuration as New would use
// it (unset fields take their defaults), as a field.List whose paths are
// the YAML keys under ca.stepca, in a fixed order.
func (c *Config) Validate() error {
	d := *c
	d.ApplyDefaults()
	var errs field.List
	errs.Add(field.HTTPS(d.URL), "url")
	if (d.RootFingerprint == "") == (d.RootFile == "") {
		errs.Add(errors.New("give exactly one of root_fingerprint and root_file"), "root_fingerprint")
	} else if fp := d.RootFingerprint; fp != "" && (len(fp) != 64 || strings.Trim(fp, "0123456789abcdefABCDEF") != "") {
		errs.Add(fmt.Errorf("%q is not a hex SHA-256 fingerprint", fp), "root_fingerprint")
	}
	if d.Provisioner == "" {
		errs.Add(errors.New("is required"), "provisioner")
	}
	if d.PasswordFile == "" {
		errs.Add(errors.New("is required"), "provisioner_password_file")
	} else {
		errs.Add(field.Absolute(d.PasswordFile), "provisioner_password_file")
	}
	errs.Add(field.Duration(d.BundleRefresh, MinBundleRefresh, MaxBundleRefresh), "bundle_refresh")
	return errs.Err()
}

// setDefaults completes a validated Config for New.
func (c *Config) setDefaults() {
	c.ApplyDefaults()
	field.Default[clock.Clock](&c.Clock, clock.RealClock{})
	field.Default(&c.Logger, slog.New(slog.DiscardHandler))
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
}
