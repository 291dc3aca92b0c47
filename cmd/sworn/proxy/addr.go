package proxy

import (
	"fmt"
	"io/fs"
	"net"
	"strings"

	"github.com/sworn-id/sworn/internal/unixsock"
)

// unixPrefix marks a Unix socket address, as ghostunnel spells it:
// unix:/run/app.sock.
const unixPrefix = "unix:"

// Network splits a proxy address into the network and address net.Dial
// takes: "unix:PATH" is a Unix socket at PATH, anything else host:port
// over TCP.
func Network(addr string) (network, address string) {
	if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
		return "unix", path
	}
	return "tcp", addr
}

// IsLocal reports whether addr is reachable only from this machine: a
// Unix socket, localhost, or a loopback IP (127.0.0.0/8, ::1). An empty
// host (":8443") is every interface, and any other name may resolve to
// anything, so neither is local.
func IsLocal(addr string) bool {
	if network, _ := Network(addr); network == "unix" {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Listen listens on addr. A Unix socket is created with exactly mode
// (unixsock.Listen: a stale socket left by a dead process is replaced, a
// socket someone serves or anything that is not a socket is refused), and
// is removed when the listener closes, so a clean stop leaves nothing
// behind.
func Listen(addr string, mode fs.FileMode) (net.Listener, error) {
	network, address := Network(addr)
	if network == "tcp" {
		l, err := net.Listen("tcp", address)
		if err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		return l, nil
	}
	if address == "" {
		return nil, fmt.Errorf("proxy: %q: no socket path after the unix: prefix", addr)
	}
	l, err := unixsock.Listen(address, mode, nil)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	l.SetUnlinkOnClose(true)
	return l, nil
}
