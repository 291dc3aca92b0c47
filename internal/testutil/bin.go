package testutil

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Bin returns the binary name from .bin at the repository root, or the
// path in the environment variable env when it is set.
func Bin(tb testing.TB, name, env, makeTarget string) string {
	tb.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	bin := filepath.Join(Root(tb), ".bin", name)
	if _, err := os.Stat(bin); err != nil {
		tb.Fatalf("no %s at %s: run `make %s` (make test does it for you), or set %s", name, bin, makeTarget, env)
	}
	return bin
}

// Root returns the sworn repository root.
func Root(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(mod, []byte("module github.com/sworn-id/sworn\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("cannot find the sworn repository root")
		}
		dir = parent
	}
}

// FreePort returns a loopback TCP port nothing listens on right now.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr returns "127.0.0.1:port" for a port nothing listens on right now.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(tb)))
}
