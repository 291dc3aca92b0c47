package vault_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/internal/field"
)

// configErrorTests are configurations Validate refuses, with every field
// error it must report, in order, by YAML path under ca.vault.
var configErrorTests = []struct {
	name string
	cfg  vault.Config
	want []string
}{
	{
		name: "no address, no credentials",
		cfg:  vault.Config{},
		want: []string{"address: is required (or set VAULT_ADDR)", "auth.method: token auth needs auth.token_file or VAULT_TOKEN"},
	},
	{
		name: "bad mode and durations",
		cfg: vault.Config{Address: "https://v", Mode: "proxy", BundleRefresh: -time.Second, IntermediateTTL: 30 * time.Minute,
			Auth: vault.Auth{TokenFile: "/t"}},
		want: []string{`mode: "proxy" is not one of sign, intermediate`, "bundle_refresh: -1s is out of range [1s, 1h0m0s]",
			"intermediate_ttl: 30m0s is out of range [1h0m0s, 168h0m0s]"},
	},
	{
		name: "address and addresses",
		cfg:  vault.Config{Address: "https://v", Addresses: []string{"https://v0"}, Auth: vault.Auth{TokenFile: "/t"}},
		want: []string{"addresses: set address or addresses, not both"},
	},
	{
		name: "one of the addresses not a URL",
		cfg:  vault.Config{Addresses: []string{"https://v0:8200", "v1:8200"}, Auth: vault.Auth{TokenFile: "/t"}},
		want: []string{`addresses[1]: "v1:8200" is not an http(s) URL`},
	},
	{
		name: "approle without its credentials",
		cfg:  vault.Config{Address: "http://v:8200", Auth: vault.Auth{Method: vault.AuthAppRole}},
		want: []string{"auth.role_id: is required for approle auth", "auth.secret_id_file: is required for approle auth"},
	},
	{
		name: "kubernetes without role and token",
		cfg:  vault.Config{Address: "http://v:8200", Auth: vault.Auth{Method: vault.AuthKubernetes}},
		want: []string{"auth.role: is required for kubernetes auth", "auth.jwt_file: is required for kubernetes auth (the projected service-account token)"},
	},
	{
		name: "unknown method",
		cfg:  vault.Config{Address: "http://v:8200", Auth: vault.Auth{Method: "ldap"}},
		want: []string{`auth.method: "ldap" is not one of token, approle, kubernetes, jwt`},
	},
}

func TestConfigValidateNamesEachYAMLField(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	for _, tt := range configErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			var l field.List
			if !errors.As(err, &l) {
				t.Fatalf("Validate = %v, want a field.List", err)
			}
			got := make([]string, len(l))
			for i, fe := range l {
				got[i] = fe.Error()
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("Validate reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestConfigValidateTakesAddressAndTokenFromTheEnvironment(t *testing.T) {
	t.Setenv("VAULT_ADDR", "https://vault:8200")
	t.Setenv("VAULT_TOKEN", "s.x")
	if err := (&vault.Config{}).Validate(); err != nil {
		t.Fatalf("Validate with VAULT_ADDR and VAULT_TOKEN set: %v", err)
	}
}

func TestConfigApplyDefaults(t *testing.T) {
	var c vault.Config
	c.ApplyDefaults()
	want := vault.Config{PKIMount: vault.DefaultPKIMount, Role: vault.DefaultRole, Mode: vault.DefaultMode,
		Auth: vault.Auth{Method: vault.DefaultAuthMethod}, BundleRefresh: vault.DefaultBundleRefresh, IntermediateTTL: vault.DefaultIntermediateTTL}
	if c.PKIMount != want.PKIMount || c.Role != want.Role || c.Mode != want.Mode || c.Auth != want.Auth ||
		c.BundleRefresh != want.BundleRefresh || c.IntermediateTTL != want.IntermediateTTL || c.JWT != want.JWT {
		t.Fatalf("ApplyDefaults = %+v, want %+v", c, want)
	}
	set := vault.Config{PKIMount: "p", Role: "r", Mode: vault.ModeIntermediate, Auth: vault.Auth{Method: vault.AuthJWT},
		BundleRefresh: -time.Second, IntermediateTTL: 2 * time.Hour}
	got := set
	got.ApplyDefaults()
	if got.PKIMount != "p" || got.Role != "r" || got.Mode != vault.ModeIntermediate || got.Auth.Method != vault.AuthJWT ||
		got.BundleRefresh != -time.Second || got.IntermediateTTL != 2*time.Hour {
		t.Fatalf("ApplyDefaults changed set fields: %+v", got)
	}
}

// TestNewRefusesWhatValidateRefuses: New checks with the same Validate
// before it contacts Vault (nothing listens at the address).
func TestNewRefusesWhatValidateRefuses(t *testing.T) {
	_, err := vault.New(context.Background(), vault.Config{TrustDomain: td, Address: "https://127.0.0.1:1", Mode: "proxy",
		Auth: vault.Auth{TokenFile: "/nonexistent"}})
	if want := `vault ca: mode: "proxy" is not one of sign, intermediate`; err == nil || err.Error() != want {
		t.Fatalf("New = %v, want %q", err, want)
	}
}
