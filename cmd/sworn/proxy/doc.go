// Package proxy is `sworn proxy`: an mTLS sidecar that admits only the peers
// a trust.Policy allows.
//
// Server mode terminates mTLS with the local SVID and forwards the plain
// stream to the target. The TLS handshake, including the policy decision,
// completes before the target is dialled, so a refused peer never reaches
// the backend, not even a byte. Client mode takes plain local connections
// and dials the target over mTLS, refusing a server whose SPIFFE ID the
// policy does not allow.
//
// HTTP mode (server side) also decides every request by peer ID, method
// and path, and guarantees that the backend receives the request that was
// decided on:
//
//   - The path decided on is trust.CanonicalPath of the request target, and
//     the path forwarded is that canonical path re-encoded by net/url, so a
//     backend that decodes escapes, merges slashes and resolves dot segments
//     serves exactly the path the rule matched. Targets that do not
//     canonicalise cleanly (dot segments raw or escaped, "..;", %2F, \, %25,
//     control characters, invalid UTF-8 or NFKC look-alikes of path syntax,
//     absolute-form and authority-form) get 400 before any rule is read.
//     Empty segments are merged, as nginx does, and the merged form is what
//     is forwarded. The query is forwarded unchanged; it is not part of the
//     path.
//   - The backend's Host is the target's, whatever Host the client sent.
//   - A request that could make the backend act on another method than the
//     one decided on (X-HTTP-Method-Override, X-HTTP-Method,
//     X-Method-Override in any case or with underscores, or _method in the
//     query) gets 400, as does an Upgrade to anything but websocket (h2c
//     would open an HTTP/2 connection to the backend on which no request is
//     decided). A _method field in a form body is not seen.
//   - The verified peer goes to the backend in X-Forwarded-Client-Cert, with
//     X-Forwarded-For/-Host/-Proto; every client header whose name equals
//     one of these, or starts with X-Forwarded-, or is Forwarded or
//     X-Real-IP, once "_" is read as "-" and case is folded, is dropped
//     first, so none can be forged through nginx's underscores_in_headers
//     or a CGI/WSGI gateway's HTTP_* variables. Request trailers, which come
//     after the body where no such check sees them, are not forwarded.
//
// Addresses are host:port or unix:PATH, for listening and for the target
// alike. Listen creates a Unix socket with exactly the mode asked for
// (internal/unixsock: a socket left by a dead process is replaced, one
// another process serves or anything that is not a socket is refused) and
// removes it when the listener closes. IsLocal says whether an address is
// reachable only from this machine (unix:, localhost, a loopback IP); the
// CLI uses it to refuse a client-mode listener or a server-mode target
// other machines could reach, as ghostunnel does.
//
// StatusHandler serves ghostunnel's /_status: JSON that is ok (200) only
// while the proxy listens, holds an unexpired SVID (its SPIFFE ID and expiry
// are in the reply) and reaches its target (in client mode: completes the
// mTLS handshake with a server the policy allows); otherwise 503 and what is
// wrong. It serves the metrics on /_metrics too.
//
// Every connection gets one audit line (peer, decision, bytes, duration);
// a connection the policy refuses names the peer, whose SVID had verified.
// Metrics count connections accepted and refused by reason, bytes,
// handshake latency and HTTP requests by result. On shutdown the listener
// closes, open connections get a drain period, then are cut.
package proxy
