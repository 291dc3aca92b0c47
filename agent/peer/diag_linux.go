package peer

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

var diagSeq atomic.Uint32

// peerInode returns the inode of the socket at the other end of the
// connected Unix socket fd, as sock_diag reports it: the client's own end
// of the connection, which shows as socket:[inode] in /proc/<pid>/fd of
// every process that holds it.
func peerInode(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("peer: stat socket: %w", err)
	}
	if st.Ino > 1<<32-1 {
		return 0, fmt.Errorf("peer: socket inode %d does not fit sock_diag", st.Ino)
	}
	ino := uint32(st.Ino)
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("peer: sock_diag: %w", err)
	}
	defer unix.Close(nl)
	seq := diagSeq.Add(1)
	if err := unix.Sendto(nl, unixDiagRequest(ino, seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("peer: sock_diag: %w", err)
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(nl, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("peer: sock_diag: %w", err)
		}
		peer, err := parseUnixDiag(buf[:n], ino)
		return uint64(peer), err
	}
}

// supportsSockDiag reports whether the kernel answers unix sock_diag
// queries (CONFIG_UNIX_DIAG), by asking about a socket pair.
func supportsSockDiag() bool {
	a, b, err := socketPair()
	if err != nil {
		return false
	}
	defer unix.Close(a)
	defer unix.Close(b)
	var st unix.Stat_t
	if err := unix.Fstat(b, &st); err != nil {
		return false
	}
	peer, err := peerInode(a)
	return err == nil && peer == st.Ino
}
