// Package fetchloop is the closed-loop FetchX509SVID client of the agent's
// Workload API benchmarks (agent/bench_test.go), shared by the benchmark's
// in-process clients and by command loopclient, which runs the same loop
// in a process of its own. It guarantees only what a benchmark needs:
// every fetch is a new FetchX509SVID stream read to its first message,
// which must carry at least one SVID, on a connection of the client's own
// kept for the run or on a new one per fetch; and each fetch's latency is
// measured from just before the stream (or the connection) is opened.
package fetchloop
