package cli_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// The hints as a user meets them: real sockets, a real agent.
func TestCommandsThatCannotReachAnIdentitySayWhatToDo(t *testing.T) {
	gone := filepath.Join(testutil.ShortTempDir(t, "hint"), "none.sock")
	if err := clitest.Fail(t, "status", "--admin-socket", gone); !strings.Contains(err.Error(), "hint: no agent answers on the admin socket "+gone) {
		t.Fatalf("status with no agent: %v", err)
	}
	if err := clitest.Fail(t, "svid", "fetch", "--socket", gone, "--timeout", "2s"); !strings.Contains(err.Error(), "hint: no agent answers on the Workload API socket") {
		t.Fatalf("svid fetch with no agent: %v", err)
	}
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", gone)
	if err := clitest.Fail(t, "jwt", "fetch", "--audience", "a"); !strings.Contains(err.Error(), "hint: SPIFFE_ENDPOINT_SOCKET is a URI") {
		t.Fatalf("jwt fetch with a bare path in SPIFFE_ENDPOINT_SOCKET: %v", err)
	}

	// An agent whose only rule is for another uid gives this process nothing.
	a := agenttest.Start(t, agenttest.Config(t, config.Rule{SPIFFEID: "spiffe://example.org/other", Selectors: []string{"unix:uid:4242"}}))
	if err := clitest.Fail(t, "svid", "fetch", "--socket", a.Config.SocketPath); !strings.Contains(err.Error(), "hint: the agent gives this process no identity: as root, sworn debug attest --pid") {
		t.Fatalf("svid fetch with no identity: %v", err)
	}
}
