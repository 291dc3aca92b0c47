package unixsock

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setModeOwner gives the socket at path mode (and owner) without following
// a link. Between bind and here, whoever can write the directory may have
// put a link to any file at path, and chmod or chown by path, run as root,
// would change that file; so the path is opened without following links
// and must still be a socket of ours, and the mode and owner are set on
// what was opened.
func setModeOwner(path string, mode fs.FileMode, owner *uint32) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("unixsock: open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("unixsock: stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("unixsock: %s was replaced after listening (now not our socket); refusing to change its mode", path)
	}
	// chmod has no form for an O_PATH descriptor; its /proc link reaches
	// the very inode opened, never what path names now.
	if err := os.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode); err != nil {
		return fmt.Errorf("unixsock: chmod %s: %w", path, err)
	}
	if owner != nil {
		if err := unix.Fchownat(fd, "", int(*owner), -1, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("unixsock: chown %s to uid %d: %w", path, *owner, err)
		}
	}
	return nil
}
