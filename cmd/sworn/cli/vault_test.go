package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/cmd/sworn/cli"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
)

func TestOperatorCommandsUseTheOperatorsVaultEnvironment(t *testing.T) {
	srv := vaulttest.Start(t)
	t.Setenv("VAULT_ADDR", srv.Addr)
	t.Setenv("VAULT_TOKEN", vaulttest.RootToken)

	out := clitest.Run(t, "vault", "setup", "--trust-domain", "example.org", "--auth-method", "approle")
	for _, want := range []string{"enabled the PKI secrets engine at pki/", "created root issuer", "wrote role pki/roles/sworn", "wrote policy sworn-agent", "wrote approle role sworn-agent"} {
		if !strings.Contains(out, want) {
			t.Fatalf("vault setup output lacks %q:\n%s", want, out)
		}
	}
	if out := clitest.Run(t, "vault", "setup", "--trust-domain", "example.org"); !strings.Contains(out, "already at pki/") {
		t.Fatalf("second vault setup:\n%s", out)
	}
	policy, err := srv.Client.Sys().GetPolicy("sworn-agent")
	if err != nil || !strings.Contains(policy, `path "pki/sign/sworn"`) || strings.Contains(policy, "sign-intermediate") {
		t.Fatalf("agent policy is not least-privilege: %v\n%s", err, policy)
	}

	if err := clitest.Fail(t, "ca", "rotate"); !strings.Contains(err.Error(), "--trust-domain is required with Vault") {
		t.Fatalf("ca rotate on Vault without a trust domain: %v", err)
	}
	rot := caJSON(t, "ca", "rotate", "--trust-domain", "example.org")
	if rot.Backend != "vault" || len(rot.CAs) != 1 || rot.CAs[0].State != "prepared" {
		t.Fatalf("ca rotate with VAULT_ADDR set: %+v, want Vault's new issuer prepared", rot)
	}
	next := rot.CAs[0].ID
	st := caJSON(t, "ca", "status").states()
	if len(st) != 2 || st[next] != "prepared" {
		t.Fatalf("ca status after rotate: %v", st)
	}
	caJSON(t, "ca", "activate", next, "--min-age", "0s")
	st = caJSON(t, "ca", "status").states()
	var old string
	for id := range st {
		if id != next {
			old = id
		}
	}
	if st[next] != "active" || st[old] != "old" {
		t.Fatalf("ca status after activate: %v, want the new issuer active and the first old", st)
	}
	if err := clitest.Fail(t, "ca", "retire", old); !strings.Contains(err.Error(), "--force") {
		t.Fatalf("retiring an issuer whose SVIDs may be valid: %v", err)
	}
}

// vaultFlagDefaults pairs each operator flag with the library default it
// shows, so `--help` never promises what the library does not do.
var vaultFlagDefaults = []struct {
	command []string
	flag    string
	want    string
}{
	{command: []string{"vault", "setup"}, flag: "pki-mount", want: vault.DefaultPKIMount},
	{command: []string{"vault", "setup"}, flag: "role", want: vault.DefaultRole},
	{command: []string{"vault", "setup"}, flag: "root-ttl", want: vault.DefaultRootTTL.String()},
	{command: []string{"vault", "setup"}, flag: "max-svid-ttl", want: vault.DefaultMaxSVIDTTL.String()},
	{command: []string{"vault", "setup"}, flag: "policy", want: vault.DefaultPolicy},
	{command: []string{"vault", "setup"}, flag: "auth-role", want: vault.DefaultAuthRole},
	{command: []string{"vault", "setup"}, flag: "token-ttl", want: vault.DefaultTokenTTL.String()},
	{command: []string{"vault", "setup"}, flag: "jwt-transit-mount", want: vault.DefaultTransitMount},
	{command: []string{"ca", "rotate"}, flag: "ttl", want: vault.DefaultRootTTL.String()},
	{command: []string{"ca", "rotate"}, flag: "pki-mount", want: vault.DefaultPKIMount},
	{command: []string{"ca", "status"}, flag: "role", want: vault.DefaultRole},
	{command: []string{"ca", "activate"}, flag: "min-age", want: (2 * time.Minute).String()},
}

func TestVaultFlagsDefaultToTheLibrarysDefaults(t *testing.T) {
	root := cli.NewCommand(context.Background())
	for _, tt := range vaultFlagDefaults {
		t.Run(strings.Join(tt.command, " ")+" --"+tt.flag, func(t *testing.T) {
			cmd, _, err := root.Find(tt.command)
			if err != nil {
				t.Fatal(err)
			}
			f := cmd.Flags().Lookup(tt.flag)
			if f == nil {
				t.Fatalf("sworn %s has no --%s", strings.Join(tt.command, " "), tt.flag)
			}
			if f.DefValue != tt.want {
				t.Fatalf("--%s defaults to %q, want %q", tt.flag, f.DefValue, tt.want)
			}
		})
	}
}
