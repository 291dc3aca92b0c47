package agent

import "google.golang.org/grpc"

// WorkloadTransportOptions are the Workload API server's gRPC transport
// bounds (workloadTransportOptions) without its credentials, which read the
// caller's peer credentials, and without its call-admission interceptors:
// the benchmark floor server (floor_bench_test.go) runs the agent's
// transport with none of the agent's work.
func WorkloadTransportOptions(maxStreamsPerConnection int) []grpc.ServerOption {
	return workloadTransportOptions(maxStreamsPerConnection)
}
