package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
)

// caReport is the documented JSON shape of every sworn ca command.
type caReport struct {
	Backend string `json:"backend"`
	CAs     []struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"cas"`
	Message string `json:"message"`
}

func caJSON(t *testing.T, args ...string) caReport {
	t.Helper()
	out := clitest.Run(t, append(args, "-o", "json")...)
	var r caReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("sworn %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return r
}

// states maps each CA's ID to its state.
func (r caReport) states() map[string]string {
	m := map[string]string{}
	for _, c := range r.CAs {
		m[c.ID] = c.State
	}
	return m
}

func TestCACommandsRotateTheEmbeddedCAThroughTheAdminSocket(t *testing.T) {
	t.Setenv("VAULT_ADDR", "") // auto must pick the agent
	a := agenttest.Start(t, agenttest.Config(t))
	admin := []string{"--admin-socket", a.Config.AdminSocketPath}

	st := caJSON(t, append([]string{"ca", "status"}, admin...)...)
	if st.Backend != "local" || len(st.CAs) != 1 || st.CAs[0].State != "active" {
		t.Fatalf("status of a fresh agent: %+v, want backend local and one active CA", st)
	}
	first := st.CAs[0].ID

	rot := caJSON(t, append([]string{"ca", "rotate"}, admin...)...)
	if len(rot.CAs) != 1 || rot.CAs[0].State != "prepared" || rot.CAs[0].ID == first {
		t.Fatalf("rotate: %+v, want one new prepared CA", rot)
	}
	next := rot.CAs[0].ID

	err := clitest.Fail(t, append([]string{"ca", "activate", first}, admin...)...)
	if !strings.Contains(err.Error(), "is not the prepared one") {
		t.Fatalf("activating the wrong CA: %v", err)
	}
	if got := caJSON(t, append([]string{"ca", "status"}, admin...)...).states(); got[first] != "active" || got[next] != "prepared" {
		t.Fatalf("a refused activation changed the CAs: %v", got)
	}

	caJSON(t, append([]string{"ca", "activate", next}, admin...)...)
	if got := caJSON(t, append([]string{"ca", "status"}, admin...)...).states(); got[first] != "old" || got[next] != "active" {
		t.Fatalf("after activate: %v, want the first old and the next active", got)
	}
	if text := clitest.Run(t, append([]string{"ca", "status"}, admin...)...); !strings.Contains(text, next) || strings.Contains(text, "retired") {
		t.Fatalf("text status:\n%s", text)
	}
	err = clitest.Fail(t, append([]string{"ca", "retire", first}, admin...)...)
	if !strings.Contains(err.Error(), "retires an old CA by itself") {
		t.Fatalf("retire on the embedded CA: %v", err)
	}

	// sworn rotate ca stays as the old spelling of ca rotate.
	if out := clitest.Run(t, append([]string{"rotate", "ca", "-o", "json"}, admin...)...); !strings.Contains(out, `"state": "prepared"`) {
		t.Fatalf("rotate ca -o json:\n%s", out)
	}
}

func TestOutputFlagRefusesUnknownFormats(t *testing.T) {
	for _, args := range [][]string{
		{"ca", "status", "-o", "yaml"},
		{"status", "-o", "yaml"},
		{"rotate", "svids", "--all", "-o", "xml"},
		{"jwt", "fetch", "--audience", "a", "-o", "tsv"},
		{"debug", "attest", "--pid", "1", "-o", "Json"},
		{"svid", "fetch", "-o", "yaml"},
		{"svid", "watch", "-o", "yaml"},
		{"bundle", "show", "-o", "yaml"},
		{"version", "-o", "yaml"},
	} {
		err := clitest.Fail(t, args...)
		if !strings.Contains(err.Error(), "want text or json") {
			t.Errorf("sworn %s: %v, want the flag refused", strings.Join(args, " "), err)
		}
	}
}
