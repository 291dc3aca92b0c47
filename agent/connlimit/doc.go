// Package connlimit bounds the Workload API connections that each uid, and
// all uids together, may hold open, so no local user can take every file
// descriptor of the agent.
//
// Listener wraps a listener whose connections know their caller (a
// peer.Listener). At accept, a connection whose uid already holds PerUID
// connections, or that would take the listener past Total, is closed at
// once: the client reads EOF, nothing of it reaches gRPC, and the agent
// keeps only a counter and a log line (at most one per LogEvery, with the
// number of refusals it stands for). A connection's slot is given back when
// it closes, whoever closes it.
//
// Credentials must wrap the transport credentials the gRPC server uses, so
// that gRPC holds the counted connection (and closing it frees its slot)
// while the inner credentials see the connection they expect. FromContext
// then finds a call's connection, so a caller that reads nothing can have
// its connection closed.
//
// Counter bounds concurrent use per uid of anything else, such as streams.
//
// What this does not do: a process that can take many uids (root, or root
// in a user namespace that maps many host uids) is bounded only by Total,
// and while Total is reached new connections of every uid are refused. The
// descriptors beyond Total stay free for the admin socket.
package connlimit
