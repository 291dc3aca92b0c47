// Package soak holds the agent's soak test (TestSoak) and the one type it
// shares with its watcher program (internal/soak/watcher): Event, the JSON
// line a watcher prints for every Workload API update it checks.
//
// TestSoak (Linux only: it reads /proc) runs the sworn binary as a
// separate process on the embedded CA with the shortest SVID TTL the
// config allows, and one watcher process per uid, each holding a go-spiffe
// X.509 context watch. While they run it publishes and activates a new CA
// through the admin socket, reloads the config with SIGHUP several times,
// and kills the agent with SIGKILL and restarts it on the same data dir.
//
// It fails when a watcher is handed or holds an SVID that is not valid
// now, does not chain to the bundle sent with it or has the wrong SPIFFE
// ID; when a watcher gets no update within a stated bound after the
// publication, the activation or the restart; when a watcher sees no
// renewal, or an SVID replaced with less than a sixth of its TTL left;
// when the agent's goroutines, open fds or RSS grow beyond a stated bound
// between an early sample and the end of one agent run; or when the
// agent's CA calls exceed rotation.max_per_second (plus the limiter's
// burst) over any 3 s window.
//
// SOAK_DURATION and SOAK_WATCHERS size it (default 75s and 20 watchers,
// so it runs inside make test; make soak runs 20 minutes with 150). It
// needs root, to run watchers under other uids, and skips saying so
// otherwise, and in -short mode.
package soak

import "time"

// Event is one line a watcher prints on stdout.
type Event struct {
	// Kind is "update" (an X.509 context the watcher checked), "violation"
	// (an update or a held SVID that broke a check; Msg says which) or
	// "watch_error" (the stream failed; go-spiffe reconnects).
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
	ID   string    `json:"id,omitempty"`
	// Serial and Issuer (the leaf's authority key ID, hex) name the SVID.
	Serial   string    `json:"serial,omitempty"`
	Issuer   string    `json:"issuer,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	// Authorities is how many X.509 authorities the trust domain's bundle
	// sent with the SVID holds.
	Authorities int `json:"authorities,omitempty"`
	// Replaced is the remaining life of the previous SVID when this update
	// replaced it with a new serial; zero on the first update.
	Replaced time.Duration `json:"replaced,omitempty"`
	Msg      string        `json:"msg,omitempty"`
}
