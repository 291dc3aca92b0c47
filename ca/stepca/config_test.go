package stepca_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/ca/stepca"
)

var fingerprint = strings.Repeat("ab", 32)

// stepcaConfigTests are configurations and what Validate says of each, by
// YAML path under ca.stepca, in order.
var stepcaConfigTests = []struct {
	name string
	cfg  stepca.Config
	want string
}{
	{
		name: "complete",
		cfg:  stepca.Config{URL: "https://ca:9000", RootFingerprint: fingerprint, Provisioner: "p", PasswordFile: "/p"},
	},
	{
		name: "empty",
		want: `url: "" is not an https URL; root_fingerprint: give exactly one of root_fingerprint and root_file; provisioner: is required; provisioner_password_file: is required`,
	},
	{
		name: "both pins",
		cfg:  stepca.Config{URL: "https://ca", RootFingerprint: fingerprint, RootFile: "/r", Provisioner: "p", PasswordFile: "/p"},
		want: "root_fingerprint: give exactly one of root_fingerprint and root_file",
	},
	{
		name: "short fingerprint, relative password file, long refresh",
		cfg:  stepca.Config{URL: "https://ca", RootFingerprint: "abc", Provisioner: "p", PasswordFile: "p", BundleRefresh: 2 * time.Hour},
		want: `root_fingerprint: "abc" is not a hex SHA-256 fingerprint; provisioner_password_file: "p" is not an absolute path; bundle_refresh: 2h0m0s is out of range [1s, 1h0m0s]`,
	},
	{
		name: "negative refresh is not the default",
		cfg:  stepca.Config{URL: "https://ca", RootFile: "/r", Provisioner: "p", PasswordFile: "/p", BundleRefresh: -time.Second},
		want: "bundle_refresh: -1s is out of range [1s, 1h0m0s]",
	},
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range stepcaConfigTests {
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
	var c stepca.Config
	c.ApplyDefaults()
	if c.BundleRefresh != stepca.DefaultBundleRefresh {
		t.Fatalf("BundleRefresh = %v, want %v", c.BundleRefresh, stepca.DefaultBundleRefresh)
	}
	c.BundleRefresh = time.Minute
	c.ApplyDefaults()
	if c.BundleRefresh != time.Minute {
		t.Fatalf("ApplyDefaults replaced a set BundleRefresh: %v", c.BundleRefresh)
	}
}

// TestNewRefusesWhatValidateRefuses: New checks with the same Validate
// before it contacts step-ca.
func TestNewRefusesWhatValidateRefuses(t *testing.T) {
	_, err := stepca.New(context.Background(), stepca.Config{TrustDomain: td, URL: "http://127.0.0.1:1", RootFingerprint: fingerprint, Provisioner: "p", PasswordFile: "/p"})
	if want := `stepca: url: "http://127.0.0.1:1" is not an https URL`; err == nil || err.Error() != want {
		t.Fatalf("New = %v, want %q", err, want)
	}
}
