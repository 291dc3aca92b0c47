package peer_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPeerStaysALeaf holds the layering: the kernel-socket code is
// imported by the attestors, never the reverse, so it must not pull in
// agent/attest or, through it, client-go (hundreds of packages).
func TestPeerStaysALeaf(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("needs the go command to list the package's imports: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/sworn-id/sworn/agent/peer").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/client-go/", "github.com/sworn-id/sworn/agent/attest"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("agent/peer depends on %s", dep)
			}
		}
	}
}
