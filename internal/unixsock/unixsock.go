package unixsock

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sworn-id/sworn/agent/secpath"
)

// Listen listens at path with the given mode, replacing a stale socket,
// and chowns it to owner when owner is not nil.
func Listen(path string, mode fs.FileMode, owner *uint32) (*net.UnixListener, error) {
	if err := secpath.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("unixsock: socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("unixsock: listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	afterBind(path)
	if err := setModeOwner(path, mode, owner); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// afterBind lets a test act between bind and chmod, where a swap would land.
var afterBind = func(string) {}

// removeStale removes a socket left at path by a process that is gone; it
// refuses a file that is not a socket, and a socket someone still serves.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil // nothing there, or listening will say what is wrong
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("unixsock: %s exists and is not a socket; refusing to replace it", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("unixsock: another process is serving on %s; refusing to take it over", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("unixsock: remove stale socket: %w", err)
	}
	return nil
}
