//go:build !linux

package attest

import (
	"context"
	"errors"

	"github.com/sworn-id/sworn/agent/peer"
)

// hashCache holds nothing off Linux, where nothing is attested.
type hashCache struct{}

// errUnsupported: the Unix attestor reads /proc, which only Linux has.
var errUnsupported = errors.New("attest: unix: only supported on Linux (reads /proc)")

// Attest implements Attestor; off Linux it always fails.
func (u *Unix) Attest(context.Context, peer.Caller) ([]Selector, error) {
	return nil, errUnsupported
}
