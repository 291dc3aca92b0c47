// Package peer tells the agent which process is on the other end of a Unix
// socket connection, and whether it is still that process.
//
// Listener takes the caller's pid, uid and gid from the kernel when the
// connection is accepted (SO_PEERCRED) together with a pidfd for the caller
// (SO_PEERPIDFD, Linux 6.5 and later; pidfd_open on older kernels). A pidfd
// names one process, never a later one that happens to get the same PID.
//
// The guarantee: after attesting a caller by reading /proc/<pid>, call
// AuthInfo.Verify. If it succeeds, the process that connected was alive
// after everything was read, so its PID cannot have been reused and what was
// read describes it. If it fails the caller is gone and the attestation must
// be thrown away.
//
// On kernels without SO_PEERPIDFD the pidfd is opened at accept time; a
// caller that connects and exits before accept, with its PID reused in that
// window, would then go unnoticed. Listener.PeerPIDFD reports which mode is
// in use so the agent can log it.
package peer
