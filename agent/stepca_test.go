package agent_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/ca/stepca"
	"github.com/sworn-id/sworn/ca/stepca/stepcatest"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

func TestStepCABackedAgentAndOutage(t *testing.T) {
	s := stepcatest.Start(t, "")
	cfg := newConfig(t)
	cfg.CA = config.CA{Type: "stepca", StepCA: stepca.Config{URL: s.URL, RootFingerprint: s.RootFingerprint, Provisioner: s.Provisioner, PasswordFile: s.PasswordFile}}
	cfg.HealthAddr = testutil.FreeAddr(t)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, cfg)
	src := newSource(t, ta)
	first, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(first.Certificates, src); err != nil {
		t.Fatalf("SVID from step-ca does not verify against the served bundle: %v", err)
	}

	s.Stop()
	clitest.Run(t, "rotate", "svids", "--all", "--admin-socket", cfg.AdminSocketPath)
	testutil.Eventually(t, "/ready to report the CA unreachable", func() bool {
		code, body := get(t, "http://"+cfg.HealthAddr+"/ready")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "CA unreachable")
	})
	if s2, err := src.GetX509SVID(); err != nil || s2.Certificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) != 0 {
		t.Fatal("the cached SVID stopped being served while step-ca was down")
	}
	s.Start(t)
	testutil.Eventually(t, "the retried renewal after step-ca came back", func() bool {
		s2, err := src.GetX509SVID()
		return err == nil && s2.Certificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) != 0
	})
	testutil.Eventually(t, "/ready to recover", func() bool {
		code, _ := get(t, "http://"+cfg.HealthAddr+"/ready")
		return code == http.StatusOK
	})
}
