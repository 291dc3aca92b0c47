package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

func TestAgentValidateChecksAFileWithoutStarting(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "trust_domain: example.org\nsocket_path: "+filepath.Join(dir, "never.sock")+"\nrules:\n  - spiffe_id: spiffe://example.org/web\n    selectors: [\"k8s:ns:web\"]\n")
	out := clitest.Run(t, "agent", "validate", "--config", good)
	if !strings.Contains(out, good+" is valid: trust domain example.org, CA local, 1 rule(s)") || !strings.Contains(out, "warning:") {
		t.Fatalf("validate of a good file (with a k8s selector while Kubernetes is off, a warning):\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "never.sock")); !os.IsNotExist(err) {
		t.Fatalf("validate started something: %v", err)
	}
	bad := write("bad.yaml", "trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/web\n    selectorz: [a]\n")
	if err := clitest.Fail(t, "agent", "validate", "--config", bad); !strings.Contains(err.Error(), bad+":4: rules[0].selectorz: unknown field") {
		t.Fatalf("validate of a bad file: %v", err)
	}
	if err := clitest.Fail(t, "agent", "validate"); !strings.Contains(err.Error(), "--config FILE is required") {
		t.Fatalf("validate without a file: %v", err)
	}
}

func TestAgentLogFormatFlag(t *testing.T) {
	dir := testutil.ShortTempDir(t, "logf")
	agent := clitest.Start(t, "agent", "--dev", "--log-format", "json", "--health-addr", "127.0.0.1:0",
		"--socket", filepath.Join(dir, "w.sock"), "--admin-socket", filepath.Join(dir, "a.sock"), "--data-dir", filepath.Join(dir, "data"))
	testutil.Eventually(t, "the agent to log that it serves", func() bool { return strings.Contains(agent.Output(), "serving") })
	if err := agent.Stop(t); err != nil {
		t.Fatalf("agent: %v", err)
	}
	for line := range strings.Lines(strings.TrimSpace(agent.Output())) {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil || v["msg"] == nil {
			t.Fatalf("--log-format json wrote a line that is not a JSON record: %q", line)
		}
	}
	if err := clitest.Fail(t, "agent", "--dev", "--log-format", "yaml", "--data-dir", filepath.Join(dir, "d2")); !strings.Contains(err.Error(), "log.format") && !strings.Contains(err.Error(), "text or json") {
		t.Fatalf("--log-format yaml: %v", err)
	}
}
