package agent

import "google.golang.org/grpc"

// WorkloadTransportOptions are the Workload API server's gRPC transport
// bounds (workloadServerOptions) without its credentials, which read the
// caller's peer credentials, and without its call-admission interceptors:
// the benchmark floor server (floor_bench_test.go) runs the agent's
// transport with none of the agent's work.
func WorkloadTransportOptions(maxStreamsPerConnection int) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(uint32(maxStreamsPerConnection)),
		grpc.MaxRecvMsgSize(workloadMaxRecvMsgSize),
		grpc.InitialWindowSize(workloadWindowSize),
		grpc.InitialConnWindowSize(workloadWindowSize),
		grpc.MaxHeaderListSize(workloadHeaderListSize),
		grpc.ReadBufferSize(workloadReadBufferSize),
		grpc.WriteBufferSize(workloadWriteBufferSize),
	}
}
