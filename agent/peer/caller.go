package peer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Caller is what the kernel says about a process on the other end of the
// agent's socket, as of the moment it connected (SO_PEERCRED and
// SO_PEERGROUPS). It lives here, with the socket code that fills it in, so
// that the attestors (agent/attest) depend on this package and not the
// other way round: the kernel-socket code stays free of client-go.
type Caller struct {
	PID    int32
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups
	// Exe is the executable the process ran when the agent accepted its
	// connection (recorded by Listener); attestors refuse to attest a
	// process that runs another one now. Zero when not known (a process
	// named by PID for diagnostics).
	Exe FileID
	// Memo holds what attestors worked out about this connection's caller
	// and may reuse on its later calls; nil for a process named by PID
	// (every attestation then starts afresh).
	Memo *Memo
}

// Memo is one connection's store for attestors: a result keyed by the
// attestor that made it. It is safe for concurrent calls on the
// connection, and its methods do nothing on a nil Memo.
//
// What may be kept: only what cannot change while the caller remains the
// process that connected and runs the executable it ran then (what
// Conn.Verify checks after every attestation), or what the attestor
// re-validates itself before reuse.
type Memo struct {
	mu sync.Mutex
	m  map[any]any
}

// Load returns what was stored under key.
func (m *Memo) Load(key any) (any, bool) {
	if m == nil {
		return nil, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[key]
	return v, ok
}

// Store keeps v under key.
func (m *Memo) Store(key, v any) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[any]any{}
	}
	m.m[key] = v
}

// FileID names one file on this machine: the device and inode stat reports.
// Two paths with the same FileID are the same file, whatever mount
// namespace each was resolved in.
type FileID struct {
	Dev, Ino uint64
}

// IsZero reports whether id names no file (no inode is numbered 0).
func (id FileID) IsZero() bool { return id.Ino == 0 }

// ErrExecutableChanged means the caller runs another executable than the
// one recorded when it connected (Caller.Exe): it has called execve since,
// and what it runs now is not what opened the connection.
var ErrExecutableChanged = errors.New("executable changed since the caller connected")

// CallerOf describes a running process the way its socket credentials
// would (effective uid and gid, supplementary groups), from
// /proc/<pid>/status under procRoot (empty means /proc), for diagnostics on
// a process that did not call and for the check at accept that an exec
// since connect did not change them. Where there is no procfs it fails.
func CallerOf(procRoot string, pid int32) (Caller, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(int(pid)), "status"))
	if err != nil {
		return Caller{}, fmt.Errorf("peer: %w", err)
	}
	c := Caller{PID: pid}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, _ := strings.Cut(line, ":")
		f := strings.Fields(value)
		switch {
		case key == "Uid" && len(f) >= 2:
			n, _ := strconv.ParseUint(f[1], 10, 32)
			c.UID = uint32(n)
		case key == "Gid" && len(f) >= 2:
			n, _ := strconv.ParseUint(f[1], 10, 32)
			c.GID = uint32(n)
		case key == "Groups":
			for _, g := range f {
				n, _ := strconv.ParseUint(g, 10, 32)
				c.Groups = append(c.Groups, uint32(n))
			}
		}
	}
	return c, nil
}
