package attest_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/peer"
)

func TestUnixRefusesACallerRunningAnotherExecutable(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	self := peer.FileID{Dev: st.Dev, Ino: st.Ino}
	for _, tc := range []struct {
		name    string
		exe     peer.FileID
		wantErr error
	}{
		{name: "the executable seen at accept", exe: self},
		{name: "not recorded", exe: peer.FileID{}},
		{name: "another executable", exe: peer.FileID{Dev: self.Dev, Ino: self.Ino + 1}, wantErr: peer.ErrExecutableChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := peer.Caller{PID: int32(os.Getpid()), UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Exe: tc.exe}
			sel, err := (&attest.Unix{}).Attest(context.Background(), c)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Attest: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := attest.NewSet(sel...).Strings(); !slices.Contains(got, "unix:path:"+exe) {
				t.Fatalf("selectors %v lack unix:path:%s", got, exe)
			}
		})
	}
}
