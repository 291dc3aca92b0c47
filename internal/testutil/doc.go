// Package testutil holds what sworn's tests share across packages, so each
// exists once: Eventually (poll a condition, fail naming what was awaited),
// Buffer (a log sink safe to read while a process or logger writes it),
// the self-signed CA builder (NewCA, Issue, CreateCertificate, PEM
// helpers), free loopback ports, ShortTempDir (a directory short enough
// for Unix socket paths), and the server binaries that make builds
// into .bin (Vault, etcd, kube-apiserver, kubectl, step-ca) from the pinned
// wrapper modules under deploy/.
//
// Guarantees: every helper calls tb.Helper, so a failure points at the
// test's line; a missing binary fails the test naming the make target, so a
// test of a real server can never pass by not running. It is imported only
// by tests and by test-helper packages (vaulttest, stepcatest, k8stest, agenttest).
package testutil
