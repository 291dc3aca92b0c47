// Package adminpb is the generated Go code of the agent's admin API
// (admin.proto beside it). Do not edit the .pb.go files: change the proto
// and run `make generate`; `make lint` fails when they are stale.
package adminpb
