package peer

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerGroups returns the supplementary groups the peer had when it
// connected (SO_PEERGROUPS, Linux 4.13; its number differs by architecture,
// so it comes from x/sys, never a literal), the same moment SO_PEERCRED
// describes, so uid, gid and groups are one consistent snapshot taken by
// the kernel rather than read later from /proc.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == 0:
			return buf[:size/4], nil
		case errors.Is(errno, unix.ERANGE) && int(size/4) > len(buf):
			buf = make([]uint32, size/4)
		default:
			return nil, errno
		}
	}
}
