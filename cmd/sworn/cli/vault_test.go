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

	clitest.Run(t, "ca", "rotate", "--trust-domain", "example.org")
	status := clitest.Run(t, "ca", "status")
	if strings.Count(status, "signing") != 1 || strings.Count(status, "trusted") != 1 {
		t.Fatalf("ca status after rotate:\n%s", status)
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
