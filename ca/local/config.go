package local

import (
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/field"
)

// DefaultTTL is the lifetime of each CA certificate.
const DefaultTTL = 7 * 24 * time.Hour

// DefaultKeyType is the CA key's type unless the configuration says
// otherwise.
const DefaultKeyType = ca.KeyECP256

// MinTTL and MaxTTL bound the ttl Validate accepts: a CA rotates at five
// sixths of its life, so a day keeps rotations rare and a year keeps a
// stolen CA key from being good for longer. New accepts down to
// minNewTTL, so tests can watch a rotation in a few fake hours.
const (
	MinTTL = 24 * time.Hour
	MaxTTL = 365 * 24 * time.Hour
)

// minNewTTL is the shortest TTL New accepts.
const minNewTTL = time.Hour

// Config configures a CA. Its TTL and KeyType are also the agent's
// ca.local section, decoded from YAML as it stands; the fields tagged
// yaml:"-" are set by the program that builds the CA, never by the file.
type Config struct {
	// TTL is the lifetime of each CA certificate; 0 means DefaultTTL.
	TTL     time.Duration `yaml:"ttl"`
	KeyType ca.KeyType    `yaml:"key_type"`

	TrustDomain spiffeid.TrustDomain `yaml:"-"`
	// Dir holds the CA keys and certificates; empty keeps them in memory.
	Dir    string       `yaml:"-"`
	Clock  clock.Clock  `yaml:"-"`
	Logger *slog.Logger `yaml:"-"`
	// OnHealth, if set, is told when the result of the CA's maintenance
	// changes: an error (the same as Health returns) when a successor
	// could not be made, nil once it could. The error wraps
	// ca.ErrUnavailable when no CA can sign.
	OnHealth func(error) `yaml:"-"`
}

// ApplyDefaults fills in the unset fields the file can set. A negative TTL
// is left for Validate (or New) to refuse.
func (c *Config) ApplyDefaults() {
	field.Default(&c.TTL, DefaultTTL)
	field.Default(&c.KeyType, DefaultKeyType)
}

// Validate reports every problem with what a configuration file sets, as
// New would use it (unset fields take their defaults), as a field.List
// whose paths are the YAML keys under ca.local, in a fixed order.
func (c *Config) Validate() error {
	d := *c
	d.ApplyDefaults()
	var errs field.List
	errs.Add(field.Duration(d.TTL, MinTTL, MaxTTL), "ttl")
	errs.Add(d.KeyType.Validate(), "key_type")
	return errs.Err()
}

// setDefaults completes a Config for New.
func (c *Config) setDefaults() {
	c.ApplyDefaults()
	field.Default[clock.Clock](&c.Clock, clock.RealClock{})
	field.Default(&c.Logger, slog.New(slog.DiscardHandler))
}
