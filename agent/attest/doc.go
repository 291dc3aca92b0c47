// Package attest turns a process that called the agent into selectors, the
// facts rules match on (unix:uid:1000, unix:path:/usr/bin/app, k8s:ns:prod).
//
// Selectors are read like SPIRE's, type then value: "unix:uid:1000" is the
// selector of type "unix" with value "uid:1000". An attestor reads what it
// reports from the kernel (/proc) at the moment of the call; it trusts
// nothing the caller says about itself.
//
// Unix reads every executable selector from one open of /proc/<pid>/exe
// and, when peer.Caller.Exe names the executable recorded at accept, refuses a
// process that runs another one now (peer.ErrExecutableChanged): an exec after
// connecting earns nothing. unix:path is reported only when the file at
// that path in the agent's own mount namespace is the file the process
// runs (device and inode), so a bind mount in another mount namespace
// earns no path. Whether the caller is still the process that connected,
// and still holds its end of the socket, is confirmed afterwards by the
// caller of Attest (see agent/peer), since a PID can be reused while
// attestation runs.
//
// Unix reads /proc and so attests on Linux only (unix_linux.go); elsewhere
// its Attest fails, and nothing is attested.
package attest
