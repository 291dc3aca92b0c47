// Package proxy is `sworn proxy`: an mTLS sidecar that admits only the peers
// a trust.Policy allows.
//
// Server mode terminates mTLS with the local SVID and forwards the plain
// stream to the target. The TLS handshake, including the policy decision,
// completes before the target is dialled, so a refused peer never reaches
// the backend, not even a byte. Client mode takes plain local connections
// and dials the target over mTLS, refusing a server whose SPIFFE ID the
// policy does not allow. HTTP mode (server side) also decides every request
// by peer ID, method and path, and passes the verified peer to the backend
// in an X-Forwarded-Client-Cert header, replacing any the client sent.
//
// Every connection gets one audit line (peer, decision, bytes, duration);
// metrics count connections accepted and refused by reason, bytes and
// handshake latency. On shutdown the listener closes, open connections get
// a drain period, then are cut.
package proxy
