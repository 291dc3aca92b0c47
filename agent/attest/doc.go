// Package attest turns a process that called the agent into selectors, the
// facts rules match on (unix:uid:1000, unix:path:/usr/bin/app, k8s:ns:prod).
//
// Selectors are read like SPIRE's, type then value: "unix:uid:1000" is the
// selector of type "unix" with value "uid:1000". An attestor reads what it
// reports from the kernel (/proc) at the moment of the call; it trusts
// nothing the caller says about itself. It does not decide whether the
// caller is still the process that connected: the caller of Attest must
// confirm that afterwards (see agent/peer), since a PID can be reused while
// attestation runs.
package attest
