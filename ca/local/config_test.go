package local_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
)

// localConfigTests are what a configuration file may set and what
// Validate says of it, by YAML path under ca.local.
var localConfigTests = []struct {
	name string
	cfg  local.Config
	want string
}{
	{name: "defaults", cfg: local.Config{}},
	{name: "shortest", cfg: local.Config{TTL: local.MinTTL, KeyType: ca.KeyRSA2048}},
	{name: "longest", cfg: local.Config{TTL: local.MaxTTL}},
	{name: "under a day", cfg: local.Config{TTL: 12 * time.Hour}, want: "ttl: 12h0m0s is out of range [24h0m0s, 8760h0m0s]"},
	{name: "over a year", cfg: local.Config{TTL: local.MaxTTL + time.Hour}, want: "ttl: 8761h0m0s is out of range [24h0m0s, 8760h0m0s]"},
	{name: "negative is not the default", cfg: local.Config{TTL: -time.Hour}, want: "ttl: -1h0m0s is out of range [24h0m0s, 8760h0m0s]"},
	{
		name: "both wrong, in order",
		cfg:  local.Config{TTL: time.Hour, KeyType: "ec-p999"},
		want: `ttl: 1h0m0s is out of range [24h0m0s, 8760h0m0s]; key_type: unsupported key type "ec-p999" (want one of [ec-p256 ec-p384 rsa-2048])`,
	},
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range localConfigTests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := tt.cfg.Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Fatalf("Validate = %q\nwant       %q", got, tt.want)
			}
		})
	}
}

func TestConfigApplyDefaults(t *testing.T) {
	var c local.Config
	c.ApplyDefaults()
	if c.TTL != local.DefaultTTL || c.KeyType != local.DefaultKeyType {
		t.Fatalf("ApplyDefaults = ttl %v, key type %q; want %v, %q", c.TTL, c.KeyType, local.DefaultTTL, local.DefaultKeyType)
	}
}

// TestNewAcceptsShorterTTLsThanAFile: New's floor is an hour, below the
// file's day, so tests can rotate quickly; below an hour it refuses.
func TestNewAcceptsShorterTTLsThanAFile(t *testing.T) {
	if _, err := local.New(local.Config{TrustDomain: td, TTL: 2 * time.Hour}); err != nil {
		t.Fatalf("New with a 2h TTL: %v", err)
	}
	_, err := local.New(local.Config{TrustDomain: td, TTL: 30 * time.Minute})
	if err == nil || !strings.Contains(err.Error(), "local ca: ttl 30m0s is shorter than the 1h0m0s minimum") {
		t.Fatalf("New with a 30m TTL: %v", err)
	}
}
