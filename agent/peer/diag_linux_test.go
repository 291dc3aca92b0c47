package peer

import (
	"syscall"
	"testing"
)

func TestPeerInodeOfSocketPair(t *testing.T) {
	a, b, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(a)
	defer syscall.Close(b)
	var st syscall.Stat_t
	if err := syscall.Fstat(b, &st); err != nil {
		t.Fatal(err)
	}
	got, err := peerInode(a)
	if err != nil {
		t.Skipf("the kernel does not answer unix sock_diag queries (CONFIG_UNIX_DIAG): %v", err)
	}
	if got != st.Ino {
		t.Fatalf("peer inode %d, want the other end's %d", got, st.Ino)
	}
}
