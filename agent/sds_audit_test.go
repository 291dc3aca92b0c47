package agent_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// An SVID first issued for an Envoy leaves the same audit line as one
// issued for a Workload API client: who (pid, uid) caused which SPIFFE ID
// and serial.
func TestSDSIssuanceWritesTheAuditLine(t *testing.T) {
	var log testutil.Buffer
	ta := agenttest.StartLogging(t, newConfig(t), &log)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := sdsClient(t, ta).FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: envoyNode(30, false), ResourceNames: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	serial := fmt.Sprintf("%x", leafOf(t, secrets(t, resp)["default"]).SerialNumber)
	var line string
	for l := range strings.Lines(log.String()) {
		if strings.Contains(l, `msg="issued X.509-SVID"`) {
			line = l
		}
	}
	for _, want := range []string{"spiffe_id=" + selfID(), "serial=" + serial, fmt.Sprintf("pid=%d ", os.Getpid()), fmt.Sprintf("uid=%d", os.Geteuid())} {
		if !strings.Contains(line, want) {
			t.Fatalf("audit line %q lacks %q\nlog:\n%s", line, want, log.String())
		}
	}
}
