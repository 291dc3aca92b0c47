package connlimit_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/connlimit"
	"github.com/sworn-id/sworn/agent/peer"
)

// fakeConn is one end of a pipe with a made-up caller.
type fakeConn struct {
	net.Conn
	caller peer.Caller
}

func (c fakeConn) Caller() peer.Caller { return c.caller }

// fakeListener hands out the connections pushed to it.
type fakeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newFakeListener() *fakeListener {
	return &fakeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}
func (l *fakeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *fakeListener) Addr() net.Addr { return &net.UnixAddr{Name: "fake", Net: "unix"} }

// harness accepts in the background and records what Accept returned.
type harness struct {
	t        *testing.T
	fake     *fakeListener
	l        *connlimit.Listener
	accepted chan net.Conn
}

func newHarness(t *testing.T, cfg connlimit.Config) *harness {
	t.Helper()
	h := &harness{t: t, fake: newFakeListener(), accepted: make(chan net.Conn, 100)}
	h.l = connlimit.New(h.fake, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := h.l.Accept()
			if err != nil {
				return
			}
			h.accepted <- c
		}
	}()
	t.Cleanup(func() { h.fake.Close(); <-done })
	return h
}

// dial offers a connection from uid and returns the client's end and,
// if the listener admitted it, the server's end (else nil, once the
// listener has closed it).
func (h *harness) dial(uid uint32) (client net.Conn, server net.Conn) {
	h.t.Helper()
	client, srv := net.Pipe()
	h.t.Cleanup(func() { client.Close() })
	h.fake.conns <- fakeConn{Conn: srv, caller: peer.Caller{PID: 42, UID: uid}}
	// A refused connection is closed: the client reads EOF at once. An
	// admitted one comes out of Accept.
	readErr := make(chan error, 1)
	go func() {
		_, err := client.Read(make([]byte, 1))
		readErr <- err
	}()
	select {
	case c := <-h.accepted:
		return client, c
	case err := <-readErr:
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
			h.t.Fatalf("refused connection: client read %v, want EOF", err)
		}
		return client, nil
	case <-time.After(10 * time.Second):
		h.t.Fatal("the connection was neither accepted nor closed")
		return nil, nil
	}
}

func TestListenerLimitsPerUIDAndTotal(t *testing.T) {
	var reasons []connlimit.Reason
	var mu sync.Mutex
	h := newHarness(t, connlimit.Config{PerUID: 2, Total: 3, OnRefuse: func(r connlimit.Reason) {
		mu.Lock()
		defer mu.Unlock()
		reasons = append(reasons, r)
	}})

	_, a1 := h.dial(1000)
	_, a2 := h.dial(1000)
	if a1 == nil || a2 == nil {
		t.Fatal("connections within the per-uid limit were refused")
	}
	if err := h.l.Saturated(); err == nil || !strings.Contains(err.Error(), "uid 1000 holds 2 connections") {
		t.Fatalf("Saturated at the per-uid limit: %v", err)
	}
	if _, c := h.dial(1000); c != nil {
		t.Fatal("a third connection of a uid limited to two was admitted")
	}
	_, b1 := h.dial(2000)
	if b1 == nil {
		t.Fatal("another uid was refused while only uid 1000 was at its limit")
	}
	if _, c := h.dial(3000); c != nil {
		t.Fatal("a connection past the total was admitted")
	}
	if err := h.l.Saturated(); err == nil || !strings.Contains(err.Error(), "3 connections open") {
		t.Fatalf("Saturated at the total: %v", err)
	}
	mu.Lock()
	got := append([]connlimit.Reason(nil), reasons...)
	mu.Unlock()
	if len(got) != 2 || got[0] != connlimit.UIDLimit || got[1] != connlimit.TotalLimit {
		t.Fatalf("refusals %v, want [uid_limit total_limit]", got)
	}

	// Closing twice frees one slot, not two.
	a1.Close()
	a1.Close()
	if h.l.Open() != 2 {
		t.Fatalf("open after closing one connection twice: %d, want 2", h.l.Open())
	}
	if _, c := h.dial(1000); c == nil {
		t.Fatal("the slot freed by a closed connection was not given back")
	}
	if _, c := h.dial(1000); c != nil {
		t.Fatal("a double close freed two slots")
	}
	a2.Close()
	b1.Close()
	if err := h.l.Saturated(); err != nil {
		t.Fatalf("Saturated with room: %v", err)
	}
}

func TestRefusalsAreLoggedAtMostOncePerInterval(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&buf, &mu}, nil))
	h := newHarness(t, connlimit.Config{PerUID: 1, Total: 10, Logger: logger, Clock: clk, LogEvery: 10 * time.Second})
	h.dial(1000)
	for range 5 {
		h.dial(1000)
	}
	lines := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "uid=1000") || !strings.Contains(l[0], "limit=1") {
		t.Fatalf("five refusals in one interval logged %d lines: %q", len(l), l)
	}
	clk.Step(10 * time.Second)
	h.dial(1000)
	if l := lines(); len(l) != 2 || !strings.Contains(l[1], "refusals_not_logged=4") {
		t.Fatalf("next interval's line: %q, want it to count the 4 refusals not logged", l)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// innerCreds records the connection its handshake was given.
type innerCreds struct {
	credentials.TransportCredentials
	got net.Conn
}

type authInfo struct{ credentials.CommonAuthInfo }

func (authInfo) AuthType() string { return "test" }

func (c *innerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c.got = conn
	return conn, authInfo{}, nil
}

func TestCredentialsHandTheInnerConnectionAndKeepTheCountedOne(t *testing.T) {
	h := newHarness(t, connlimit.Config{PerUID: 1, Total: 1})
	_, c := h.dial(1000)
	inner := &innerCreds{}
	got, info, err := connlimit.Credentials(inner).ServerHandshake(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := inner.got.(fakeConn); !ok {
		t.Fatalf("inner handshake got %T, want the connection the listener wrapped", inner.got)
	}
	if got != c || info.AuthType() != "test" {
		t.Fatalf("handshake returned %T, %v; want the counted connection and the inner auth info", got, info)
	}
	if _, _, err := connlimit.Credentials(inner).ServerHandshake(fakeConn{}); err == nil {
		t.Fatal("a connection not from a connlimit.Listener passed the handshake")
	}
	if _, ok := connlimit.FromContext(context.Background()); ok {
		t.Fatal("FromContext found a connection in a context without a peer")
	}
}

func TestCounter(t *testing.T) {
	c := connlimit.Counter{Limit: 2}
	r1, ok1 := c.Acquire(7)
	_, ok2 := c.Acquire(7)
	_, ok3 := c.Acquire(7)
	_, other := c.Acquire(8)
	if !ok1 || !ok2 || ok3 || !other {
		t.Fatalf("Acquire: %v %v %v (other uid %v), want true true false (true)", ok1, ok2, ok3, other)
	}
	_, _ = c.Acquire(8)
	_, _ = c.Acquire(9)
	if uid, held, ok := c.Full(); !ok || uid != 7 || held != 2 {
		t.Fatalf("Full with uids 7 and 8 at the limit = %d, %d, %v; want the lowest, 7, holding 2", uid, held, ok)
	}
	r1()
	r1()
	if c.Held(7) != 1 {
		t.Fatalf("after releasing one twice: %d held, want 1", c.Held(7))
	}
	if uid, _, ok := c.Full(); !ok || uid != 8 {
		t.Fatalf("Full with only uid 8 at the limit = %d, %v; want 8", uid, ok)
	}
}
