package config

import (
	"errors"
	"time"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/internal/field"
)

// Defaults of the limits section. A node runs at most a few hundred pods,
// and a pod's workloads hold a handful of Workload API connections and
// streams (go-spiffe's X509Source and JWTSource, Envoy's SDS), so even a
// node whose every pod runs as one uid stays far below these.
const (
	DefaultMaxConnectionsPerUID    = 1024
	DefaultMaxStreamsPerUID        = 1024
	DefaultMaxStreamsPerConnection = 100 // the least HTTP/2 (RFC 9113 §6.5.2) asks a server to allow
	DefaultReservedFDs             = 1024
	DefaultStreamSendTimeout       = time.Minute
)

// Limits bounds what one local process, or one uid, can make the agent
// hold: connections, streams, blocked sends and cached JWT-SVIDs.
type Limits struct {
	// MaxConnectionsPerUID is how many Workload API connections one uid
	// may hold open; the next is closed at accept.
	MaxConnectionsPerUID int `yaml:"max_connections_per_uid"`
	// MaxConnections bounds Workload API connections of all uids. Zero
	// means derived at start from the open-file limit: each connection
	// costs two descriptors (the socket and the caller's pidfd), and
	// ReservedFDs stay free for the admin socket, the CA and files.
	MaxConnections int `yaml:"max_connections"`
	// ReservedFDs is how many file descriptors the Workload API may never
	// take, so the admin socket and the agent's own work go on.
	ReservedFDs int `yaml:"reserved_fds"`
	// MaxStreamsPerUID bounds the calls (streams and unary) one uid may
	// have open at once over all its connections; more get
	// ResourceExhausted.
	MaxStreamsPerUID int `yaml:"max_streams_per_uid"`
	// MaxStreamsPerConnection is the HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS
	// the Workload API announces.
	MaxStreamsPerConnection int `yaml:"max_streams_per_connection"`
	// StreamSendTimeout is how long a send to a workload may stay blocked
	// (it reads nothing) before its connection is closed.
	StreamSendTimeout time.Duration `yaml:"stream_send_timeout"`
	// JWTCacheBytes and JWTCacheBytesPerUID bound the JWT-SVID cache.
	JWTCacheBytes       int `yaml:"jwt_cache_bytes"`
	JWTCacheBytesPerUID int `yaml:"jwt_cache_bytes_per_uid"`
	// MaxDigestBytes bounds the executables the agent hashes for
	// unix:sha256 (only when a rule uses it); a larger one gets no digest
	// selector, and a log line says so.
	MaxDigestBytes int `yaml:"max_digest_bytes"`
}

// SetDefaults fills in every unset limit; MaxConnections stays zero (derived
// at start).
func (l *Limits) SetDefaults() {
	field.Default(&l.MaxConnectionsPerUID, DefaultMaxConnectionsPerUID)
	field.Default(&l.ReservedFDs, DefaultReservedFDs)
	field.Default(&l.MaxStreamsPerUID, DefaultMaxStreamsPerUID)
	field.Default(&l.MaxStreamsPerConnection, DefaultMaxStreamsPerConnection)
	field.Default(&l.StreamSendTimeout, DefaultStreamSendTimeout)
	field.Default(&l.JWTCacheBytes, cache.DefaultJWTCacheBytes)
	field.Default(&l.JWTCacheBytesPerUID, cache.DefaultJWTCacheBytesPerUID)
	field.Default(&l.MaxDigestBytes, attest.DefaultMaxDigestBytes)
}

// ConnectionCap returns the bound on Workload API connections of all uids
// for a process allowed nofile open files: MaxConnections if set, else
// what the descriptors beyond the reserve allow, two per connection. Under
// a low open-file limit the reserve shrinks to a quarter of it, so the
// Workload API is never left with nothing.
func (l Limits) ConnectionCap(nofile uint64) int {
	if l.MaxConnections > 0 {
		return l.MaxConnections
	}
	reserve := min(uint64(l.ReservedFDs), nofile/4)
	return int(max(min((nofile-reserve)/2, 1<<30), 1))
}

// UIDConnectionCap returns the bound on one uid's Workload API connections:
// MaxConnectionsPerUID, but never more than half of ConnectionCap, so that
// under a low open-file limit (1,024 leaves 384 connections) one uid
// cannot take every connection and shut out the others.
func (l Limits) UIDConnectionCap(nofile uint64) int {
	return max(1, min(l.MaxConnectionsPerUID, l.ConnectionCap(nofile)/2))
}

func (l Limits) validate() field.List {
	var errs field.List
	errs.Add(field.Int(l.MaxConnectionsPerUID, 1, 1<<20), "max_connections_per_uid")
	if l.MaxConnections != 0 {
		errs.Add(field.Int(l.MaxConnections, 1, 1<<24), "max_connections")
	}
	errs.Add(field.Int(l.ReservedFDs, 64, 1<<20), "reserved_fds")
	errs.Add(field.Int(l.MaxStreamsPerUID, 1, 1<<20), "max_streams_per_uid")
	errs.Add(field.Int(l.MaxStreamsPerConnection, 1, 10000), "max_streams_per_connection")
	errs.Add(field.Duration(l.StreamSendTimeout, time.Second, time.Hour), "stream_send_timeout")
	errs.Add(field.Int(l.JWTCacheBytes, 64<<10, 4<<30), "jwt_cache_bytes")
	errs.Add(field.Int(l.JWTCacheBytesPerUID, 64<<10, 4<<30), "jwt_cache_bytes_per_uid")
	errs.Add(field.Int(l.MaxDigestBytes, 1<<20, 1<<36), "max_digest_bytes")
	if l.JWTCacheBytesPerUID > l.JWTCacheBytes {
		errs.Add(errors.New("must not exceed jwt_cache_bytes"), "jwt_cache_bytes_per_uid")
	}
	return errs
}
