//go:build !linux

package cli

import "testing"

func TestAgentSaysItRunsOnLinuxOnly(t *testing.T) {
	cmd := newAgentCommand()
	cmd.SetArgs([]string{"--dev"})
	err := cmd.Execute()
	if err == nil || err.Error() != "sworn agent: the node agent runs on Linux only (peer credentials, pidfd)" {
		t.Fatalf("sworn agent off Linux: %v, want the Linux-only error", err)
	}
}
