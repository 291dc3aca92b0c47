// Command benchclient is the workload the agent's new-process benchmark
// (agent/newproc_bench_test.go) starts: it connects to the Workload API
// socket given as its argument, reads the first message of a
// FetchX509SVID stream, and prints how long that took, measured from just
// before connecting, and the wall-clock time it got it, so the parent can
// also time exec to SVID.
//
// It speaks gRPC over HTTP/2 (net/http's unencrypted HTTP/2, prior
// knowledge, as grpc-go does on a Unix socket) without grpc-go: that keeps
// the binary at ~6 MB, so the benchmark can pad it to 10 MB, where a
// grpc-go client is ~11 MB stripped. The message is not decoded; a reply that is not one
// uncompressed, non-empty gRPC message naming a spiffe:// ID (an error
// comes as a header-only reply with no message) is a failure.
//
// Output, one line: "first-svid-ns <duration> done-unix-ns <time>".
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchclient <socket path>")
		os.Exit(2)
	}
	took, err := fetch(os.Args[1])
	done := time.Now()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchclient:", err)
		os.Exit(1)
	}
	fmt.Printf("first-svid-ns %d done-unix-ns %d\n", took.Nanoseconds(), done.UnixNano())
}

// emptyRequest is an X509SVIDRequest (no fields) in gRPC's framing:
// uncompressed, length 0.
var emptyRequest = []byte{0, 0, 0, 0, 0}

func fetch(socket string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &h2c, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost/SpiffeWorkloadAPI/FetchX509SVID", bytes.NewReader(emptyRequest))
	if err != nil {
		return 0, err
	}
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	req.Header.Set("workload.spiffe.io", "true")
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, err := readMessage(resp)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if !bytes.Contains(msg, []byte("spiffe://")) {
		return 0, errors.New("the first message names no SPIFFE ID")
	}
	return took, nil
}

// readMessage reads one gRPC message from resp's body.
func readMessage(resp *http.Response) ([]byte, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	var hdr [5]byte
	if _, err := io.ReadFull(resp.Body, hdr[:]); err != nil {
		return nil, fmt.Errorf("no message (grpc-status %q, %q): %w", resp.Header.Get("grpc-status"), resp.Header.Get("grpc-message"), err)
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if hdr[0] != 0 || n == 0 || n > 1<<20 {
		return nil, fmt.Errorf("unexpected message header %x", hdr)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, msg); err != nil {
		return nil, err
	}
	return msg, nil
}
