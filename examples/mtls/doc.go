// Package mtls holds an example pair built on sworn's trust package: an
// HTTPS server (server/) that admits only allow-listed SPIFFE IDs and a
// client (client/) that accepts only an allow-listed server. The test in
// this directory builds both and runs them against a real agent.
package mtls
