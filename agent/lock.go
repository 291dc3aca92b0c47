package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// errLocked is what lockFile returns when another open file holds the lock.
var errLocked = errors.New("locked")

// dataDirLock is the exclusive lock an agent holds on its data dir for its
// whole life, so that two agents never write the same CA, bundle and SVID
// files (they would silently diverge, each re-issuing what the other
// rotated).
type dataDirLock struct {
	f *os.File
}

// lockDataDir takes the exclusive lock on <dir>/lock and writes the
// agent's pid into it, so that a refused agent can name the holder. It
// must run before anything in dir is written. The file is never removed:
// removing it would let a third agent lock a new file while the second
// still holds the old one.
func lockDataDir(dir string) (*dataDirLock, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|oNoFollow, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: data dir %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		holder := "pid unknown"
		if data, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(string(bytes.TrimSpace(data))); perr == nil {
				holder = "pid " + strconv.Itoa(pid)
			}
		}
		_ = f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("agent: data dir %s is in use by another sworn agent (%s); stop it or use another data_dir", dir, holder)
		}
		return nil, fmt.Errorf("agent: data dir %s: lock %s: %w", dir, path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("agent: data dir %s: write %s: %w", dir, path, err)
	}
	return &dataDirLock{f: f}, nil
}

// release lets another agent use the data dir. It is safe on nil and to
// call twice.
func (l *dataDirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	// The pid goes first, so that nobody names a stopped agent as the holder.
	_ = l.f.Truncate(0)
	_ = l.f.Close() // closing the only descriptor drops the lock
	l.f = nil
}
