package peer

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/sworn-id/sworn/internal/testutil"
)

// selfConn is a connection accepted from this test process, so every
// check of its caller passes.
func selfConn(t *testing.T) *Conn {
	t.Helper()
	path := filepath.Join(testutil.ShortTempDir(t, "peer"), "s.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(ul)
	t.Cleanup(func() { l.Close() })
	client, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*Conn)
}

// Calls on one connection share a check only if it began after they were
// made and passed: a call made after the last check began, or after one
// that failed, checks for itself.
func TestVerifySharesOnlyALaterPassingCheck(t *testing.T) {
	c := selfConn(t)
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	if n := c.checks.Load(); n != 1 {
		t.Fatalf("%d checks after one Verify, want 1", n)
	}
	for _, tc := range []struct {
		name       string
		arrived    uint64 // checks begun when the call was made
		lastOK     bool
		wantChecks uint64 // after the call
	}{
		{name: "made before the last check began, which passed", arrived: 0, lastOK: true, wantChecks: 1},
		{name: "made after the last check began", arrived: 1, lastOK: true, wantChecks: 2},
		{name: "made before the last check began, which failed", arrived: 0, lastOK: false, wantChecks: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.checks.Store(1)
			c.last, c.lastOK = 1, tc.lastOK
			if err := c.verifyAfter(tc.arrived); err != nil {
				t.Fatal(err)
			}
			if n := c.checks.Load(); n != tc.wantChecks {
				t.Fatalf("%d checks, want %d", n, tc.wantChecks)
			}
		})
	}
}
