package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// The sock_diag interface for AF_UNIX (linux/unix_diag.h, linux/netlink.h,
// linux/sock_diag.h), which golang.org/x/sys does not name. The values are
// part of the kernel's ABI and the same on every architecture.
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	nlmsgError       = 2  // NLMSG_ERROR
	nlmsgHdrLen      = 16 // sizeof(struct nlmsghdr)
	unixDiagReqLen   = 24 // sizeof(struct unix_diag_req)
	unixDiagMsgLen   = 16 // sizeof(struct unix_diag_msg)
	udiagShowPeer    = 0x4
	unixDiagPeer     = 2 // UNIX_DIAG_PEER: the peer socket's inode, u32
)

var errNoPeer = errors.New("peer: sock_diag reply names no peer socket")

// unixDiagRequest encodes a request for the socket with inode ino and its
// peer's inode (UDIAG_SHOW_PEER). The cookie is left as "no cookie", so the
// kernel looks the socket up by inode alone.
func unixDiagRequest(ino uint32, seq uint32) []byte {
	b := make([]byte, nlmsgHdrLen+unixDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], sockDiagByFamily)
	ne.PutUint16(b[6:], 0x1) // NLM_F_REQUEST
	ne.PutUint32(b[8:], seq)
	r := b[nlmsgHdrLen:]
	r[0] = syscall.AF_UNIX
	ne.PutUint32(r[4:], ^uint32(0)) // every state
	ne.PutUint32(r[8:], ino)
	ne.PutUint32(r[12:], udiagShowPeer)
	ne.PutUint32(r[16:], ^uint32(0))
	ne.PutUint32(r[20:], ^uint32(0))
	return b
}

// parseUnixDiag finds, in a sock_diag reply, the message about socket ino
// and returns the inode of its peer. The reply comes from the kernel, but
// it is parsed as if it could be anything: every length is checked before
// it is used.
func parseUnixDiag(b []byte, ino uint32) (uint32, error) {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		n := int(ne.Uint32(b[0:]))
		if n < nlmsgHdrLen || n > len(b) {
			return 0, fmt.Errorf("peer: sock_diag: message length %d out of range", n)
		}
		typ := ne.Uint16(b[4:])
		body := b[nlmsgHdrLen:n]
		switch typ {
		case nlmsgError:
			if len(body) < 4 {
				return 0, errors.New("peer: sock_diag: short error message")
			}
			if code := int32(ne.Uint32(body)); code != 0 {
				return 0, fmt.Errorf("peer: sock_diag: %w", syscall.Errno(-code))
			}
		case sockDiagByFamily:
			if len(body) >= unixDiagMsgLen && body[0] == syscall.AF_UNIX && ne.Uint32(body[4:]) == ino {
				return peerAttr(body[unixDiagMsgLen:])
			}
		}
		b = b[align4(n):]
	}
	return 0, errNoPeer
}

// peerAttr returns the UNIX_DIAG_PEER attribute among attrs.
func peerAttr(attrs []byte) (uint32, error) {
	ne := binary.NativeEndian
	for len(attrs) >= 4 {
		n := int(ne.Uint16(attrs[0:]))
		if n < 4 || n > len(attrs) {
			return 0, fmt.Errorf("peer: sock_diag: attribute length %d out of range", n)
		}
		if ne.Uint16(attrs[2:]) == unixDiagPeer && n >= 8 {
			if peer := ne.Uint32(attrs[4:]); peer != 0 {
				return peer, nil
			}
			return 0, errNoPeer
		}
		attrs = attrs[min(align4(n), len(attrs)):]
	}
	return 0, errNoPeer
}

func align4(n int) int { return (n + 3) &^ 3 }
