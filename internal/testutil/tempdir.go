package testutil

import (
	"os"
	"testing"
)

// ShortTempDir makes a new directory directly under the system temp dir
// and removes it when the test ends. Its path is short enough for the Unix
// sockets tests put in it (108 bytes at most), which t.TempDir's per-test
// paths can exceed; like os.MkdirTemp, the directory is 0700.
func ShortTempDir(tb testing.TB, prefix string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
