// Package peer tells the agent which process is on the other end of a Unix
// socket connection, and whether it is still that process.
//
// It owns Caller, the kernel's record of that process, which the attestors
// (agent/attest) take as input; this package imports no attestor and no
// Kubernetes client, so the socket code stays small (TestPeerStaysALeaf).
//
// Listener takes the caller's pid, uid and gid from the kernel when the
// connection is accepted (SO_PEERCRED) together with a pidfd for the caller
// (SO_PEERPIDFD, Linux 6.5 and later; pidfd_open on older kernels). A pidfd
// names one process, never a later one that happens to get the same PID.
// At accept it also records the executable the caller runs (device and
// inode of /proc/<pid>/exe), and marks the connection as never attestable
// if the caller's effective uid or gid no longer match SO_PEERCRED's (an
// exec of a set-user-ID or set-group-ID program since connect).
//
// The guarantee: after attesting a caller by reading /proc/<pid>, call
// AuthInfo.Verify. If it succeeds, the process that connected was alive
// after everything was read, so its PID cannot have been reused and what was
// read describes it; it still runs the executable it ran when its
// connection was accepted, so it has not exec'd another program since; and
// it still holds its own end of the connection (found by inode, from
// sock_diag, in /proc/<pid>/fd), so a helper it handed the connection to
// and that closed its copy cannot borrow its identity. ErrGone means the
// caller exited; ErrNotCaller means it is alive but no longer what was
// attested, for good: the connection must not carry an identity again.
//
// What it cannot see: an exec between the caller's connect() and the
// agent's accept, by a process that keeps its end of the socket across the
// exec (no close-on-exec), is indistinguishable from the new program having
// connected, unless the exec changed its effective uid or gid. Linux
// records nothing about the connector's executable at connect time; closing
// that window needs the kernel to (an LSM label taken at socket creation,
// read with SO_PEERSEC, or a BPF LSM hook on unix_stream_connect that
// records the executable).
//
// On kernels without SO_PEERPIDFD the pidfd is opened at accept time; a
// caller that connects and exits before accept, with its PID reused in that
// window, would then go unnoticed. Listener.PeerPIDFD reports which mode is
// in use so the agent can log it. Without unix sock_diag (CONFIG_UNIX_DIAG)
// the check that the caller holds its socket is skipped;
// Listener.SocketCheck reports that.
//
// All of this is Linux (conn_linux.go, groups_linux.go, diag_linux.go,
// proc_linux.go). Elsewhere the package builds, so that what imports it
// builds, but every connection's caller is unknown: Accept closes each one
// and Verify fails.
package peer
