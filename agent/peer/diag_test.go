package peer

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
)

// diagReply builds a sock_diag reply about socket ino: one
// SOCK_DIAG_BY_FAMILY message with the given attributes (type, payload).
func diagReply(ino uint32, attrs ...[]byte) []byte {
	ne := binary.NativeEndian
	body := make([]byte, unixDiagMsgLen)
	body[0] = syscall.AF_UNIX
	body[1] = syscall.SOCK_STREAM
	ne.PutUint32(body[4:], ino)
	for _, a := range attrs {
		body = append(body, a...)
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
	}
	msg := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(body))
	ne.PutUint32(msg[0:], uint32(nlmsgHdrLen+len(body)))
	ne.PutUint16(msg[4:], sockDiagByFamily)
	return append(msg, body...)
}

func attr(typ uint16, payload []byte) []byte {
	a := make([]byte, 4, 4+len(payload))
	binary.NativeEndian.PutUint16(a[0:], uint16(4+len(payload)))
	binary.NativeEndian.PutUint16(a[2:], typ)
	return append(a, payload...)
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func errorReply(errno syscall.Errno) []byte {
	ne := binary.NativeEndian
	msg := make([]byte, nlmsgHdrLen+4+nlmsgHdrLen)
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], nlmsgError)
	ne.PutUint32(msg[nlmsgHdrLen:], uint32(-int32(errno)))
	return msg
}

func TestParseUnixDiag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reply   []byte
		want    uint32
		wantErr error
	}{
		{name: "peer after other attributes", reply: diagReply(7, attr(0, []byte("/run/x.sock\x00")), attr(unixDiagPeer, u32(8))), want: 8},
		{name: "no peer attribute", reply: diagReply(7, attr(6, []byte{1})), wantErr: errNoPeer},
		{name: "peer inode zero", reply: diagReply(7, attr(unixDiagPeer, u32(0))), wantErr: errNoPeer},
		{name: "another socket", reply: diagReply(9, attr(unixDiagPeer, u32(8))), wantErr: errNoPeer},
		{name: "kernel error", reply: errorReply(syscall.ENOENT), wantErr: syscall.ENOENT},
		{name: "truncated header", reply: diagReply(7, attr(unixDiagPeer, u32(8)))[:10], wantErr: errNoPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseUnixDiag(tc.reply, 7)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("parseUnixDiag: %d, %v; want error %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseUnixDiag: %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// FuzzParseUnixDiag: whatever the bytes, the parser does not panic and
// never reports inode 0 as a peer; a well-formed reply about the socket
// asked for yields exactly the peer it carries, wherever the peer
// attribute sits among others.
func FuzzParseUnixDiag(f *testing.F) {
	f.Add(diagReply(7, attr(0, []byte("/run/x.sock\x00")), attr(unixDiagPeer, u32(8))), uint32(7), uint32(8), []byte("ab"))
	f.Add(errorReply(syscall.ENOENT), uint32(7), uint32(1), []byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 20, 0}, uint32(1), uint32(2), []byte{3, 0, 1, 0})
	f.Fuzz(func(t *testing.T, raw []byte, ino, peer uint32, junk []byte) {
		if got, err := parseUnixDiag(raw, ino); err == nil && got == 0 {
			t.Fatalf("parseUnixDiag(%x) reported peer inode 0", raw)
		}
		if peer == 0 || len(junk) > 1000 {
			return
		}
		other := attr(unixDiagPeer+1, junk)
		got, err := parseUnixDiag(diagReply(ino, other, attr(unixDiagPeer, u32(peer)), other), ino)
		if err != nil || got != peer {
			t.Fatalf("well-formed reply: %d, %v; want %d", got, err, peer)
		}
	})
}
