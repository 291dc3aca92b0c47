package agent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// metric returns the value of the first sample of /metrics whose name and
// labels start with prefix, or 0 if there is none.
func metric(t *testing.T, addr, prefix string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) && len(line) > len(prefix) && (line[len(prefix)] == ' ' || line[len(prefix)] == '{' || prefix[len(prefix)-1] == '}') {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

func ready(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestStreamLimitPerUID(t *testing.T) {
	cfg := newConfig(t)
	cfg.Limits.MaxStreamsPerUID = 2
	ta := startAgent(t, cfg)
	client := rawClient(t, ta)
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true")), 20*time.Second)
	defer cancel()
	open := func() (context.CancelFunc, error) {
		sctx, scancel := context.WithCancel(ctx)
		stream, err := client.FetchX509SVID(sctx, &workload.X509SVIDRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		return scancel, err
	}
	first, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(); err != nil {
		t.Fatal(err)
	}
	_, err = open()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "limits.max_streams_per_uid") {
		t.Fatalf("a third stream of a uid allowed two: %v, want ResourceExhausted naming the limit", err)
	}
	// A unary call is a stream too.
	if _, err := client.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"db"}}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a unary call over the limit: %v, want ResourceExhausted", err)
	}
	first()
	testutil.Eventually(t, "a slot to be freed by the closed stream", func() bool {
		c, err := open()
		if err == nil {
			c()
		}
		return err == nil
	})
}

// A client that opens a FetchX509SVID stream and never reads it while its
// SVID rotates again and again: gRPC's flow control stops the agent from
// queuing more than a window for it, the blocked send is ended after
// limits.stream_send_timeout by closing the connection, and the stream's
// goroutine is freed.
func TestStreamThatNeverReadsIsBoundedAndEnded(t *testing.T) {
	const window = 64 << 10
	cfg := newConfig(t)
	cfg.HealthAddr = testutil.FreeAddr(t)
	cfg.Limits.StreamSendTimeout = time.Second
	ta := startAgent(t, cfg)
	health := cfg.HealthAddr

	// The client's transport reads the socket, but the stream's window
	// (64 KiB, fixed) is only given back as the application reads, which
	// it never does.
	conn, err := grpc.NewClient(ta.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true")), 2*time.Minute)
	defer cancel()
	stream, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv() // the stream is open and served; from here on nothing is read
	if err != nil {
		t.Fatal(err)
	}

	rotations := 0
	deadline := time.Now().Add(90 * time.Second)
	for metric(t, health, "sworn_workload_api_stalled_connections_closed_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d rotations the agent still had not ended the stream that reads nothing", rotations)
		}
		clitest.Run(t, "rotate", "svids", "--all", "--admin-socket", cfg.AdminSocketPath)
		rotations++
	}

	// What reached the client is at most its window: the agent did not
	// queue one message per rotation.
	received, bytes := 1, proto.Size(first)
	for {
		resp, err := stream.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("the stalled stream ended with %v, want Unavailable (connection closed)", err)
			}
			break
		}
		received++
		bytes += proto.Size(resp)
	}
	t.Logf("%d rotations; the client got %d messages, %d bytes", rotations, received, bytes)
	if bytes > 2*window || received >= rotations {
		t.Fatalf("the client got %d messages (%d bytes) for %d rotations; want at most about a window (%d bytes)", received, bytes, rotations, window)
	}
	testutil.Eventually(t, "the stalled stream's handler to return", func() bool {
		return metric(t, health, `sworn_workload_api_open_streams{method="FetchX509SVID"}`) == 0
	})
	// The agent serves others as before.
	if _, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(ta.Addr())); err != nil {
		t.Fatalf("a new client after the stalled one was cut off: %v", err)
	}
}

func TestJWTSVIDAudienceBounds(t *testing.T) {
	ta := jwtAgent(t)
	raw := rawClient(t, ta)
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true")), 20*time.Second)
	defer cancel()
	many := func(n, size int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%0*d", size, i)
		}
		return out
	}
	tests := []struct {
		name     string
		audience []string
		want     codes.Code
		message  string
	}{
		{name: "at every limit", audience: many(32, 500), want: codes.OK},
		{name: "too many", audience: many(33, 10), want: codes.InvalidArgument, message: "33 audiences given; at most 32 are allowed"},
		{name: "one too long", audience: []string{"db", strings.Repeat("a", 2049)}, want: codes.InvalidArgument, message: "audience[1] is 2049 bytes long; at most 2048 are allowed"},
		{name: "too large in all", audience: many(9, 2000), want: codes.InvalidArgument, message: "audiences total 18000 bytes; at most 16384 are allowed"},
		{name: "empty", audience: []string{"db", ""}, want: codes.InvalidArgument, message: "audience[1] is empty"},
		// The review's request: refused by the message size bound before
		// any of it is looked at.
		{name: "3.9 MB", audience: []string{strings.Repeat("a", 3900<<10)}, want: codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := raw.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: tt.audience})
			if status.Code(err) != tt.want || (tt.message != "" && status.Convert(err).Message() != tt.message) {
				t.Fatalf("FetchJWTSVID: %v, want %v %q", err, tt.want, tt.message)
			}
			if tt.want == codes.OK && len(resp.Svids) != 2 {
				t.Fatalf("got %d tokens, want one per identity", len(resp.Svids))
			}
		})
	}
}
