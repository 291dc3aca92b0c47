package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
)

// unmarshalOut runs sworn args... and decodes what it printed into v.
func unmarshalOut(t *testing.T, v any, args ...string) {
	t.Helper()
	out := clitest.Run(t, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("sworn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The documented JSON shapes, each checked against what a running agent
// gives this process.
func TestJSONOutputsHaveTheDocumentedShape(t *testing.T) {
	a := agenttest.Start(t, agenttest.Config(t))
	self := fmt.Sprintf("spiffe://example.org/uid/%d", os.Geteuid())

	var tokens []struct {
		SPIFFEID  string   `json:"spiffe_id"`
		Token     string   `json:"token"`
		Audience  []string `json:"audience"`
		ExpiresAt string   `json:"expires_at"`
	}
	unmarshalOut(t, &tokens, "jwt", "fetch", "--audience", "db", "--socket", a.Config.SocketPath, "-o", "json")
	if len(tokens) != 1 || tokens[0].SPIFFEID != self || strings.Count(tokens[0].Token, ".") != 2 ||
		len(tokens[0].Audience) != 1 || tokens[0].Audience[0] != "db" || tokens[0].ExpiresAt == "" {
		t.Fatalf("jwt fetch -o json: %+v", tokens)
	}

	var valid struct {
		SPIFFEID string         `json:"spiffe_id"`
		Claims   map[string]any `json:"claims"`
	}
	unmarshalOut(t, &valid, "jwt", "validate", "--audience", "db", "--socket", a.Config.SocketPath, "-o", "json", tokens[0].Token)
	if valid.SPIFFEID != self || valid.Claims["sub"] != self {
		t.Fatalf("jwt validate -o json: %+v", valid)
	}

	var att struct {
		PID       int32    `json:"pid"`
		UID       uint32   `json:"uid"`
		Selectors []string `json:"selectors"`
		SPIFFEIDs []string `json:"spiffe_ids"`
		Errors    []string `json:"errors"`
	}
	unmarshalOut(t, &att, "debug", "attest", "--pid", strconv.Itoa(os.Getpid()), "--admin-socket", a.Config.AdminSocketPath, "-o", "json")
	if att.PID != int32(os.Getpid()) || att.UID != uint32(os.Geteuid()) || len(att.Selectors) == 0 ||
		len(att.SPIFFEIDs) != 1 || att.SPIFFEIDs[0] != self || att.Errors == nil {
		t.Fatalf("debug attest -o json: %+v (errors must be [] when there are none)", att)
	}

	var rot struct {
		Scheduled *int32 `json:"scheduled"`
	}
	clitest.Run(t, "svid", "fetch", "--socket", a.Config.SocketPath) // an X.509-SVID to re-issue
	unmarshalOut(t, &rot, "rotate", "svids", "--all", "--admin-socket", a.Config.AdminSocketPath, "-o", "json")
	if rot.Scheduled == nil || *rot.Scheduled != 1 {
		t.Fatalf("rotate svids -o json: %s, want scheduled 1 (the SVID svid fetch caused)", clitest.Run(t, "rotate", "svids", "--all", "--admin-socket", a.Config.AdminSocketPath, "-o", "json"))
	}
}
