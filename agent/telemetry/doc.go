// Package telemetry owns the agent's Prometheus metrics and its health
// endpoints (/live, /ready, /metrics on a localhost HTTP address).
//
// Metrics live in their own registry, never the global one, so tests and
// embedders can run several agents in one process. Nothing here ever
// records key material or SVID contents; labels are bounded (reasons,
// methods, gRPC codes), never SPIFFE IDs or PIDs.
package telemetry
