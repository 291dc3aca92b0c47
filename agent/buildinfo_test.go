package agent_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sworn-id/sworn/internal/version"
)

// The start log line names the build, so a log shipped off the node says
// which sworn wrote it; the values are those `sworn version` prints.
func TestStartLogLineNamesTheBuild(t *testing.T) {
	logs := runLogged(t, newConfig(t))
	v := version.Get()
	dec := json.NewDecoder(bytes.NewReader(logs.Bytes()))
	for {
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("no \"sworn agent serving\" line by the time the agent was ready:\n%s", logs.String())
		}
		if rec["msg"] != "sworn agent serving" {
			continue
		}
		for k, want := range map[string]string{"version": v.Version, "commit": v.Commit, "go_version": v.GoVersion} {
			if rec[k] != want {
				t.Errorf("start log line: %s = %v, want %q\n%v", k, rec[k], want, rec)
			}
		}
		return
	}
}
