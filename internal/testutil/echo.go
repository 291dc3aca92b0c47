package testutil

import (
	"io"
	"net"
	"testing"
)

// UnixEcho serves an echo on a Unix socket at path until the test ends:
// the simplest backend for a proxy test.
func UnixEcho(tb testing.TB, path string) {
	tb.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}
