// Command loopclient runs the Workload API benchmarks' closed fetch loop
// (package fetchloop) in a process of its own, so that per-caller costs
// the agent pays (reading the caller's /proc entries, scanning its file
// descriptors for the socket) are paid for a caller of a workload's size,
// not for the benchmark process, which also holds the agent's side of
// every connection.
//
// Usage: loopclient -clients N [-new] -n FETCHES <socket path>
//
// It dials (unless -new), makes one warm-up fetch per client, prints
// "ready" on a line of its own, waits for a line on stdin, makes FETCHES
// fetches from N goroutines (closed loop), and prints a fetchloop.Result
// as JSON on one line. Any failure exits 1 with a message on stderr.
package main
