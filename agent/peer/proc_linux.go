package peer

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// statExe returns the identity of the file process pid runs. stat follows
// the /proc magic link to the file itself, in whatever mount namespace it
// lives, so a path the process sees differently cannot confuse it.
func statExe(pid int32) (FileID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(int(pid))+"/exe", &st); err != nil {
		return FileID{}, err
	}
	return FileID{Dev: st.Dev, Ino: st.Ino}, nil
}

// credsChanged reports, with an error wrapping ErrNotCaller, when the
// effective uid or gid of process pid differs from what SO_PEERCRED
// recorded at connect. Between connect and accept, that is how an exec of
// a set-user-ID or set-group-ID program shows: the program's path and
// digest would be attested, but the connection was opened by whatever ran
// before.
func credsChanged(pid int32, uid, gid uint32) error {
	now, err := CallerOf("", pid)
	if err != nil {
		return fmt.Errorf("peer: credentials of caller %d: %w: %w", pid, ErrNotCaller, err)
	}
	if now.UID != uid || now.GID != gid {
		return fmt.Errorf("peer: caller %d connected as uid/gid %d/%d but runs as %d/%d when accepted: %w",
			pid, uid, gid, now.UID, now.GID, ErrNotCaller)
	}
	return nil
}

// holdsSocket looks for the socket whose inode is ino among the open files
// of process pid, trying fd hint first (where it was found last time), and
// returns the fd it is at. The fd table is the one /proc/<pid>/fd shows,
// the thread group's.
func holdsSocket(pid int32, ino uint64, hint int) (int, error) {
	dir := "/proc/" + strconv.Itoa(int(pid)) + "/fd/"
	want := "socket:[" + strconv.FormatUint(ino, 10) + "]"
	if hint >= 0 {
		if link, err := os.Readlink(dir + strconv.Itoa(hint)); err == nil && link == want {
			return hint, nil
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return -1, fmt.Errorf("peer: open files of caller %d: %w", pid, err)
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			if link, err := os.Readlink(dir + name); err == nil && link == want {
				fd, err := strconv.Atoi(name)
				if err != nil {
					continue
				}
				return fd, nil
			}
		}
		if err != nil {
			break
		}
	}
	return -1, fmt.Errorf("peer: caller %d no longer holds the connection's socket: %w", pid, ErrNotCaller)
}
