package vaulttest_test

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/ca/vault/vaulttest"
)

// nameServer accepts connections and writes name on each.
func nameServer(t *testing.T, name string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(name + "\n"))
			_ = c.Close()
		}
	}()
	return l
}

// via dials the balancer and returns the name of the target that answered.
func via(t *testing.T, b *vaulttest.Balancer) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(b.Addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read through the balancer: %v", err)
	}
	return strings.TrimSpace(line)
}

// The balancer sends connections to its targets in turn, skips one it
// cannot dial, and counts what each got.
func TestBalancerGoesRoundRobinAndSkipsADeadTarget(t *testing.T) {
	var addrs []string
	var ls []net.Listener
	for _, name := range []string{"a", "b", "c"} {
		l := nameServer(t, name)
		ls = append(ls, l)
		addrs = append(addrs, "http://"+l.Addr().String())
	}
	b := vaulttest.NewBalancer(t, addrs)
	var got []string
	for range 6 {
		got = append(got, via(t, b))
	}
	if s := strings.Join(got, ""); s != "abcabc" {
		t.Fatalf("connections went to %q, want abcabc (round-robin)", s)
	}
	ls[1].Close() // b dies
	got = got[:0]
	for range 4 {
		got = append(got, via(t, b))
	}
	if s := strings.Join(got, ""); s != "acca" {
		t.Fatalf("with b down, connections went to %q, want acca (b's turn passes to c)", s)
	}
	if s := b.Sent(); s[0] != 4 || s[1] != 2 || s[2] != 4 {
		t.Fatalf("Sent = %v, want [4 2 4]", s)
	}
}
