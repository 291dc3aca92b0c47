package vaulttest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Balancer is a round-robin TCP load balancer in front of Vault nodes, as
// an L4 load balancer with health checks stands in front of an HA cluster:
// each new connection goes to the next node in turn, and a node it cannot
// dial (a killed process) is skipped for the one after it. It does not
// look inside the connection, so a request that reaches a standby is
// forwarded by Vault itself, and a connection open to a node that dies is
// cut, as a real one would be.
type Balancer struct {
	Addr string // http://127.0.0.1:port

	targets []string // host:port
	l       net.Listener

	mu     sync.Mutex
	closed bool
	next   int
	conns  map[net.Conn]struct{}
	sent   []int // connections forwarded, by target
}

// NewBalancer starts a balancer over addrs ("http://host:port", as
// Cluster.Addrs returns them) until the test ends.
func NewBalancer(tb testing.TB, addrs []string) *Balancer {
	tb.Helper()
	b := &Balancer{conns: map[net.Conn]struct{}{}, sent: make([]int, len(addrs))}
	for _, a := range addrs {
		scheme, host, ok := strings.Cut(a, "://")
		if !ok || scheme != "http" {
			tb.Fatalf("balancer target %q: want http://host:port", a)
		}
		b.targets = append(b.targets, host)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	b.Addr, b.l = "http://"+l.Addr().String(), l
	go b.serve()
	tb.Cleanup(b.close)
	return b
}

// Sent returns how many connections went to each target, in the order
// given to NewBalancer.
func (b *Balancer) Sent() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sent...)
}

func (b *Balancer) close() {
	_ = b.l.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for c := range b.conns {
		_ = c.Close()
	}
}

func (b *Balancer) serve() {
	for {
		c, err := b.l.Accept()
		if err != nil {
			return
		}
		go b.forward(c)
	}
}

// dial connects to the next target that accepts, starting from the one
// after the last used; it fails only if none does.
func (b *Balancer) dial() (net.Conn, error) {
	b.mu.Lock()
	start := b.next
	b.next = (b.next + 1) % len(b.targets)
	b.mu.Unlock()
	var errs []string
	for i := range b.targets {
		t := (start + i) % len(b.targets)
		up, err := net.DialTimeout("tcp", b.targets[t], time.Second)
		if err == nil {
			b.mu.Lock()
			b.sent[t]++
			b.mu.Unlock()
			return up, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("vaulttest balancer: no target accepts: %s", strings.Join(errs, "; "))
}

func (b *Balancer) forward(c net.Conn) {
	up, err := b.dial()
	if err != nil {
		_ = c.Close()
		return
	}
	b.mu.Lock()
	if b.closed {
		// Accepted just before close: close() has already run, and would
		// never close this pair.
		b.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	b.conns[c], b.conns[up] = struct{}{}, struct{}{}
	b.mu.Unlock()
	splice(c, up)
	b.mu.Lock()
	delete(b.conns, c)
	delete(b.conns, up)
	b.mu.Unlock()
}
