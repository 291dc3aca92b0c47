package agent_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/internal/testutil"
)

// BenchmarkNewProcessFirstSVID starts one new process per iteration, a
// small gRPC client (agent/internal/benchclient, built once per run and
// padded with trailing zeros to 10 MiB or 100 MiB: an ELF runs the same
// with data appended), which connects to the Workload API socket and reads
// its first SVID. The child times it from just before connecting to the
// first message (p50-ms, p99-ms); the parent also reports exec to first
// SVID (exec-p50-ms, exec-p99-ms: fork, exec, the Go runtime's start, and
// the same). With few iterations p99 is the slowest child.
//
//   - binary=same: one file for every child, so its digest is cached
//     after the first (warm-up) child.
//   - binary=fresh: a new copy of the file for every child (a new inode,
//     as after a deploy), so an agent that hashes executables hashes each.
//
// Servers: the floor; the agent with its default rule (no rule uses
// unix:sha256); and the agent with a rule whose only selector is the
// padded binary's unix:sha256, so every new executable must be hashed.
// The figures of both agents are also given as ratios to the floor's.
func BenchmarkNewProcessFirstSVID(b *testing.B) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		b.Skip("no go tool in PATH to build the client: ", err)
	}
	dir := testutil.ShortTempDir(b, "newproc")
	client := buildClient(b, goTool, dir)
	for _, mib := range []int{10, 100} {
		exe := filepath.Join(dir, fmt.Sprintf("client-%dMB", mib))
		digest := padTo(b, client, exe, int64(mib)<<20)
		for _, binary := range []string{"same", "fresh"} {
			b.Run(fmt.Sprintf("size=%dMB/binary=%s", mib, binary), func(b *testing.B) {
				for _, server := range []string{"floor", "sworn", "sworn-sha256rule"} {
					var cfg *config.Config
					if server == "sworn-sha256rule" {
						cfg = newConfig(b, config.Rule{SPIFFEID: "spiffe://example.org/exe", Selectors: []string{"unix:sha256:" + digest}})
					}
					t := startTarget(b, server, cfg)
					b.Run("server="+server, func(b *testing.B) {
						c := children{exe: exe, fresh: binary == "fresh", dir: dir, socket: t.socket}
						c.run(b)
						floors.record(b, server, "p50", c.p50, "p50-vs-floor")
						floors.record(b, server, "p99", c.p99, "p99-vs-floor")
					})
				}
			})
		}
	}
}

// buildClient builds benchclient, stripped, into dir.
func buildClient(b *testing.B, goTool, dir string) string {
	b.Helper()
	out := filepath.Join(dir, "benchclient")
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "github.com/sworn-id/sworn/agent/internal/benchclient")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build benchclient: %v\n%s", err, msg)
	}
	return out
}

// padTo copies src to dst, padded with zeros to size bytes, and returns
// dst's SHA-256.
func padTo(b *testing.B, src, dst string, size int64) string {
	b.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	if int64(len(data)) > size {
		b.Fatalf("benchclient is %d bytes, over the %d to pad it to", len(data), size)
	}
	data = append(data, make([]byte, size-int64(len(data)))...)
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// children runs one client process per iteration against socket.
type children struct {
	exe, dir, socket string
	fresh            bool // a new copy of exe per child
	p50, p99         float64
}

func (c *children) run(b *testing.B) {
	b.Helper()
	if _, _, err := c.one(b, 0); err != nil { // issues the SVID; caches the digest for binary=same
		b.Fatal(err)
	}
	var first, exec []time.Duration
	i := 0
	for b.Loop() {
		i++
		f, e, err := c.one(b, i)
		if err != nil {
			b.Fatal(err)
		}
		first, exec = append(first, f), append(exec, e)
	}
	c.p50, c.p99 = quantiles(first)
	b.ReportMetric(c.p50, "p50-ms")
	b.ReportMetric(c.p99, "p99-ms")
	e50, e99 := quantiles(exec)
	b.ReportMetric(e50, "exec-p50-ms")
	b.ReportMetric(e99, "exec-p99-ms")
}

// one runs child i and returns its connect-to-SVID and exec-to-SVID times.
func (c *children) one(b *testing.B, i int) (first, toSVID time.Duration, err error) {
	exe := c.exe
	if c.fresh {
		b.StopTimer()
		exe = filepath.Join(c.dir, fmt.Sprintf("fresh-%d", i))
		copyFile(b, c.exe, exe)
		defer os.Remove(exe)
		b.StartTimer()
	}
	var out []byte
	start := time.Now()
	for try := 0; ; try++ {
		out, err = exec.Command(exe, c.socket).Output()
		// A file just written can be busy for a moment if another
		// goroutine forked while it was open for writing.
		if !errors.Is(err, syscall.ETXTBSY) || try == 10 {
			break
		}
		time.Sleep(10 * time.Millisecond)
		start = time.Now()
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return 0, 0, err
	}
	var ns, done int64
	if _, err := fmt.Sscanf(string(out), "first-svid-ns %d done-unix-ns %d", &ns, &done); err != nil {
		return 0, 0, fmt.Errorf("child printed %q: %w", out, err)
	}
	return time.Duration(ns), time.Unix(0, done).Sub(start), nil
}

func copyFile(b *testing.B, src, dst string) {
	b.Helper()
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}
