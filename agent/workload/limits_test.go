package workload

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/connlimit"
	"github.com/sworn-id/sworn/agent/peer"
	"github.com/sworn-id/sworn/internal/testutil"
)

type callerConn struct{ net.Conn }

func (callerConn) Caller() peer.Caller { return peer.Caller{PID: 42, UID: 1000} }

type oneConnListener struct {
	c    chan net.Conn
	done chan struct{}
}

func (l oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l oneConnListener) Close() error   { return nil }
func (l oneConnListener) Addr() net.Addr { return &net.UnixAddr{Name: "x", Net: "unix"} }

// pipeStream sends by writing to its connection, which blocks until the
// other end reads, as a send blocks on a caller that reads nothing.
type pipeStream struct {
	grpc.ServerStream
	conn net.Conn
}

func (s pipeStream) SendMsg(any) error {
	_, err := s.conn.Write([]byte("message"))
	return err
}

func TestBlockedSendClosesItsConnectionAfterTheTimeout(t *testing.T) {
	const timeout = time.Minute
	clk := clocktesting.NewFakeClock(time.Now())
	s := New(Config{Clock: clk, Limits: Limits{SendTimeout: timeout}}, nil)

	client, server := net.Pipe()
	defer client.Close()
	l := oneConnListener{c: make(chan net.Conn, 1), done: make(chan struct{})}
	defer close(l.done)
	cl := connlimit.New(l, connlimit.Config{PerUID: 1, Total: 1})
	l.c <- callerConn{server}
	accepted, err := cl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	conn := accepted.(*connlimit.Conn)
	w := &watchedStream{ServerStream: pipeStream{conn: conn}, s: s, conn: conn}

	// A send the caller reads completes and leaves no timer behind.
	go func() { _, _ = client.Read(make([]byte, 64)) }()
	if err := w.SendMsg(nil); err != nil {
		t.Fatalf("a send that was read: %v", err)
	}
	if clk.HasWaiters() {
		t.Fatal("a completed send left its timer running")
	}

	// A send nobody reads stays blocked until the timeout, then its
	// connection is closed and the send fails with Unavailable.
	errc := make(chan error, 1)
	go func() { errc <- w.SendMsg(nil) }()
	testutil.Eventually(t, "the blocked send to set its timer", clk.HasWaiters)
	clk.Step(timeout)
	select {
	case err := <-errc:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("blocked send ended with %v, want Unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked send was not ended after the timeout")
	}
	if cl.Open() != 0 {
		t.Fatal("the stalled connection still holds its slot")
	}
	if got := counter(t, s, "sworn_workload_api_stalled_connections_closed_total"); got != 1 {
		t.Fatalf("stalled connections counted: %v, want 1", got)
	}
}

func counter(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	families, err := s.cfg.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
