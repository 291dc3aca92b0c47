package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/agent/internal/benchclient/fetchloop"
	"github.com/sworn-id/sworn/internal/testutil"
)

// BenchmarkFetchX509SVIDFirstResponse measures, with 1, 10 and 100
// concurrent clients back to back (closed loop, package fetchloop), the
// time from opening a FetchX509SVID stream to its first message, with the
// caller's SVID already cached (as it is for every caller after the
// first), against the agent and against the floor (floor_bench_test.go)
// in the same run with the same client:
//
//   - conn=kept: each client keeps its gRPC connection and opens a new
//     stream per fetch, the way a workload re-fetching does.
//   - conn=new: a new connection per fetch (dial, HTTP/2 set-up, one
//     stream, close), the way a short-lived process fetches once.
//
// client=process runs the clients in a process of their own (command
// loopclient, grpc-go, the same loop): the caller the agent attests is a
// small process, as a workload is. client=inproc runs them in the
// benchmark process, which also holds the agent's side of every
// connection and its pidfds, so whatever the agent pays per caller
// descriptor (finding the socket among /proc/<pid>/fd on a connection's
// first check) is paid for a caller with thousands of them: it is the
// figure for a workload with many descriptors (a proxy, a busy server).
//
// Reports p50 and p99 latency and the aggregate rate, and for sworn
// floor-ratio, its rate over the floor's. Clients and server share the
// machine's cores.
func BenchmarkFetchX509SVIDFirstResponse(b *testing.B) {
	loopclient := buildLoopClient(b)
	for _, conn := range []string{"kept", "new"} {
		for _, clients := range []int{1, 10, 100} {
			for _, client := range []string{"process", "inproc"} {
				b.Run(fmt.Sprintf("conn=%s/clients=%d/client=%s", conn, clients, client), func(b *testing.B) {
					for _, server := range servers {
						t := startTarget(b, server, nil)
						b.Run("server="+server, func(b *testing.B) {
							var res fetchloop.Result
							if client == "process" {
								res = processLoop(b, loopclient, t, clients, conn == "new")
							} else {
								res = inprocLoop(b, t, clients, conn == "new")
							}
							floors.record(b, server, "fetches/s", reportLoop(b, res), "floor-ratio")
						})
					}
				})
			}
		}
	}
}

// buildLoopClient builds command loopclient into a temporary directory
// (without -trimpath, so it reuses the packages the test binary's build
// left in the build cache).
func buildLoopClient(b *testing.B) string {
	b.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		b.Skip("no go tool in PATH to build the client: ", err)
	}
	out := filepath.Join(testutil.ShortTempDir(b, "loop"), "loopclient")
	cmd := exec.Command(goTool, "build", "-o", out, "github.com/sworn-id/sworn/agent/internal/benchclient/loopclient")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build loopclient: %v\n%s", err, msg)
	}
	return out
}

// inprocLoop runs b.N fetches from clients goroutines of this process.
func inprocLoop(b *testing.B, t target, clients int, newConn bool) fetchloop.Result {
	b.Helper()
	ctx := context.Background()
	f, err := fetchloop.New(t.addr(), clients, newConn)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Warm(ctx, clients); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	res, err := fetchloop.Run(ctx, f, clients, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	return res
}

// processLoop runs b.N fetches from clients goroutines of a loopclient
// process; the benchmark's timer runs from the start line, after the
// process has started, dialled and warmed up, to its result.
func processLoop(b *testing.B, exe string, t target, clients int, newConn bool) fetchloop.Result {
	b.Helper()
	b.StopTimer()
	args := []string{"-clients", strconv.Itoa(clients), "-n", strconv.Itoa(b.N)}
	if newConn {
		args = append(args, "-new")
	}
	cmd := exec.Command(exe, append(args, t.socket)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	fail := func(err error) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b.Fatalf("loopclient: %v; stderr: %s", err, stderr.String())
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		fail(fmt.Errorf("%q, %v instead of ready", line, err))
	}
	b.StartTimer()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		fail(err)
	}
	var res fetchloop.Result
	if err := json.NewDecoder(out).Decode(&res); err != nil {
		fail(err)
	}
	b.StopTimer()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("loopclient: %v; stderr: %s", err, stderr.String())
	}
	if len(res.LatenciesNS) != b.N {
		b.Fatalf("loopclient made %d fetches, want %d", len(res.LatenciesNS), b.N)
	}
	return res
}

// reportLoop reports a loop's p50-ms, p99-ms and fetches/s, and returns
// the rate.
func reportLoop(b *testing.B, res fetchloop.Result) float64 {
	b.Helper()
	if len(res.LatenciesNS) == 0 {
		return 0
	}
	p50, p99 := quantiles(res.Latencies())
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(res.Rate(), "fetches/s")
	return res.Rate()
}
