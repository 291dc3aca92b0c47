//go:build !linux

package peer

import (
	"errors"
)

var errUnsupported = errors.New("peer: only supported on Linux")

func statExe(int32) (FileID, error)               { return FileID{}, errUnsupported }
func credsChanged(int32, uint32, uint32) error    { return errUnsupported }
func holdsSocket(int32, uint64, int) (int, error) { return -1, errUnsupported }
func peerInode(int) (uint64, error)               { return 0, errUnsupported }
func supportsSockDiag() bool                      { return false }
