package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"golang.org/x/net/http2"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
)

// A stream is attested when it opens, but every later message carries a
// new key. A process that opens an X509-SVID stream, then execs another
// binary while keeping the connection, must not go on receiving the
// identity of the binary that opened the stream: the agent re-checks the
// caller before each send and ends the stream instead.
//
// The exec'd process cannot continue the gRPC client's stream, so it reads
// the HTTP/2 frames that arrive on the inherited socket, as an attacker's
// reader would, and reports whether a DATA frame (a new SVID and key) or
// the end of the stream came.
func TestStreamEndsWhenItsCallerExecs(t *testing.T) {
	_, bins, _ := binaries(t, "streamer", "reader")
	cfg := agenttest.Config(t, config.Rule{SPIFFEID: "spiffe://example.org/streamer", Selectors: []string{"unix:path:" + bins["streamer"]}})
	ta := agenttest.Start(t, cfg)

	outR, outW := pipe(t)
	cmd := exec.Command(bins["streamer"], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=streamer", "SWORN_TEST_SOCK="+cfg.SocketPath, "SWORN_TEST_TARGET="+bins["reader"])
	cmd.Stdout = outW
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("streamer's stderr:\n%s", stderr)
		}
	})
	out := newLineReader(outR)
	if got := out.next(t, "the stream's first message"); got != "first spiffe://example.org/streamer" {
		t.Fatalf("streamer got %q, want its SVID", got)
	}
	if got := out.next(t, "the reader after the exec"); got != "up" {
		t.Fatalf("reader said %q, want up", got)
	}
	// Any rule reload makes every open stream send again.
	if err := ta.Agent.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := out.next(t, "what reached the exec'd reader"); got != "ended" {
		t.Fatalf("after the exec the stream's reader saw %q, want the stream ended (no new SVID)", got)
	}
}

// streamer opens FetchX509SVID on a connection whose socket survives exec,
// prints the first SVID's ID, then execs SWORN_TEST_TARGET as "reader".
func streamer() error {
	c, err := net.Dial("unix", os.Getenv("SWORN_TEST_SOCK"))
	if err != nil {
		return err
	}
	f, err := c.(*net.UnixConn).File()
	if err != nil {
		return err
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
		return err
	}
	conn, err := grpc.NewClient("passthrough:///sworn", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return c, nil }))
	if err != nil {
		return err
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "workload.spiffe.io", "true")
	stream, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		return err
	}
	resp, err := stream.Recv()
	if err != nil {
		return err
	}
	if len(resp.Svids) != 1 {
		return fmt.Errorf("%d SVIDs", len(resp.Svids))
	}
	fmt.Println("first", resp.Svids[0].SpiffeId)
	// Let the client's reader drain what has arrived, so the reader
	// starts on a frame boundary; nothing more comes until the test
	// reloads the rules.
	time.Sleep(200 * time.Millisecond)
	env := append(withRole("reader"), "SWORN_TEST_FD="+strconv.Itoa(int(f.Fd())))
	return syscall.Exec(os.Getenv("SWORN_TEST_TARGET"), []string{os.Getenv("SWORN_TEST_TARGET"), "-test.run=^$"}, env)
}

// reader reads HTTP/2 frames from the inherited socket and prints "data"
// at the first DATA frame with a payload, "ended" when the stream or
// connection ends.
func reader() error {
	fd, err := strconv.Atoi(os.Getenv("SWORN_TEST_FD"))
	if err != nil {
		return err
	}
	fr := http2.NewFramer(nil, os.NewFile(uintptr(fd), "conn"))
	fmt.Println("up")
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			fmt.Println("ended")
			return nil
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			if len(f.Data()) > 0 {
				fmt.Println("data")
				return nil
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				fmt.Println("ended")
				return nil
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			fmt.Println("ended")
			return nil
		}
	}
}
