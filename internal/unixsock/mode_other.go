//go:build !linux

package unixsock

import (
	"fmt"
	"io/fs"
	"os"
)

// setModeOwner gives the socket at path mode (and owner). Without O_PATH
// the check that path is still a socket and the chmod are two steps; on
// Linux they are one (mode_linux.go).
func setModeOwner(path string, mode fs.FileMode, owner *uint32) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("unixsock: stat %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("unixsock: %s was replaced after listening (now not a socket); refusing to change its mode", path)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("unixsock: chmod %s: %w", path, err)
	}
	if owner != nil {
		if err := os.Lchown(path, int(*owner), -1); err != nil {
			return fmt.Errorf("unixsock: chown %s to uid %d: %w", path, *owner, err)
		}
	}
	return nil
}
