package attest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/sworn-id/sworn/agent/peer"
)

// Attest implements Attestor.
//
// Everything about the executable is read from one open of
// /proc/<pid>/exe: the digest is of that file (when wanted, see
// Unix.NeedDigest), unix:path is emitted only if
// the path the kernel reports for it names that same file (device and
// inode) in the agent's own mount namespace, and when c.Exe is set that file
// must be c.Exe, or Attest fails with ErrExecutableChanged. So a process
// that execs another binary while it is attested cannot mix the two.
func (u *Unix) Attest(ctx context.Context, c peer.Caller) ([]Selector, error) {
	if sel, ok := u.memoized(ctx, c); ok {
		return sel, nil
	}
	sel, wantDigest, err := u.attest(ctx, c)
	if err == nil {
		c.Memo.Store(u, unixMemo{sel: slices.Clone(sel), set: NewSet(sel...), digest: wantDigest, until: u.now().Add(nameTTL)})
	}
	return sel, err
}

// unixMemo is a connection's last unix attestation. Everything in it
// follows from the process and the executable it runs, which the caller
// of Attest verifies after every attestation (peer.Conn.Verify: alive,
// same executable as at accept, still holding its connection), except the
// user and group names and the executable's path, which may change under
// it: so it is kept for nameTTL, as the names are.
type unixMemo struct {
	sel    []Selector
	set    Set  // sel as a Set, for NeedDigest on every reuse
	digest bool // the digest was wanted (present, or refused for size)
	until  time.Time
}

// memoized returns the connection's last unix attestation if it is still
// fresh and has the digest when one is wanted. Reusing it skips re-reading
// /proc/<pid>/exe: on a kept connection that is most of the cost of a call.
// It is safe only because every caller verifies the process after
// attesting it (the workload server does, before answering).
func (u *Unix) memoized(ctx context.Context, c peer.Caller) ([]Selector, bool) {
	v, ok := c.Memo.Load(u)
	if !ok {
		return nil, false
	}
	m := v.(unixMemo)
	if !u.now().Before(m.until) || !m.digest && u.wantDigest(ctx, m.set) {
		return nil, false
	}
	return slices.Clone(m.sel), true
}

func (u *Unix) now() time.Time {
	if u.clock != nil {
		return u.clock()
	}
	return time.Now()
}

// attest reads the caller's selectors and says whether the digest was
// wanted (computed, or refused for size).
func (u *Unix) attest(ctx context.Context, c peer.Caller) (sel []Selector, wantDigest bool, err error) {
	proc := filepath.Join(u.procRoot(), strconv.Itoa(int(c.PID)))
	sel = []Selector{
		{Type: "unix", Value: "uid:" + strconv.FormatUint(uint64(c.UID), 10)},
		{Type: "unix", Value: "gid:" + strconv.FormatUint(uint64(c.GID), 10)},
	}
	if name, ok := u.names.user(c.UID); ok {
		sel = append(sel, Selector{Type: "unix", Value: "user:" + name})
	}
	if name, ok := u.names.group(c.GID); ok {
		sel = append(sel, Selector{Type: "unix", Value: "group:" + name})
	}
	for _, g := range c.Groups {
		sel = append(sel, Selector{Type: "unix", Value: "supplementary_gid:" + strconv.FormatUint(uint64(g), 10)})
	}
	exe := filepath.Join(proc, "exe")
	// Opening the magic link gives the file the process runs, wherever it
	// lives (another mount namespace, a deleted file), not whatever the
	// agent would find at the path it reports.
	f, err := os.Open(exe)
	if err != nil {
		return nil, false, fmt.Errorf("attest: unix: executable of pid %d: %w", c.PID, err)
	}
	defer f.Close()
	st, err := statOf(f)
	if err != nil {
		return nil, false, fmt.Errorf("attest: unix: executable of pid %d: %w", c.PID, err)
	}
	id := peer.FileID{Dev: uint64(st.Dev), Ino: st.Ino}
	if !c.Exe.IsZero() && id != c.Exe {
		return nil, false, fmt.Errorf("attest: unix: pid %d: %w", c.PID, peer.ErrExecutableChanged)
	}
	if path, ok := pathOf(exe, id); ok {
		sel = append(sel, Selector{Type: "unix", Value: "path:" + path})
	}
	if wantDigest = u.wantDigest(ctx, NewSet(sel...)); !wantDigest {
		return sel, false, nil
	}
	if limit := u.maxDigestBytes(); st.Size > limit {
		if u.hashes.tooLarge(st) && u.Logger != nil {
			u.Logger.Warn("executable too large to hash: it gets no unix:sha256 selector, so rules on its digest do not match it; raise limits.max_digest_bytes if they should",
				"pid", c.PID, "executable", readlinkOr(exe), "bytes", st.Size, "max_digest_bytes", limit)
		}
		return sel, true, nil
	}
	sum, err := u.hashes.sum(f, st)
	if err != nil {
		return nil, false, fmt.Errorf("attest: unix: digest of pid %d's executable: %w", c.PID, err)
	}
	sel = append(sel, Selector{Type: "unix", Value: "sha256:" + sum})
	return sel, true, nil
}

// readlinkOr returns where the link points, or the link itself.
func readlinkOr(link string) string {
	if path, err := os.Readlink(link); err == nil {
		return path
	}
	return link
}

// pathOf returns the path /proc/<pid>/exe reports, if the file at that path
// in the agent's own mount namespace is id. The reported path is resolved
// in the caller's mount namespace, which an unprivileged user can build
// (unshare -Urm, then bind-mount any file over /usr/bin/x), so on its own
// it proves nothing about what the agent would find there. A process in
// another mount namespace (most containers) usually gets no unix:path.
func pathOf(exe string, id peer.FileID) (string, bool) {
	path, err := os.Readlink(exe)
	if err != nil || !filepath.IsAbs(path) {
		return "", false
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		// Gone, replaced (the kernel then reports "<path> (deleted)"), or
		// not there in the agent's namespace.
		return "", false
	}
	if (peer.FileID{Dev: uint64(st.Dev), Ino: st.Ino}) != id {
		return "", false
	}
	return path, true
}

func statOf(f *os.File) (*syscall.Stat_t, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("no stat information for %s", f.Name())
	}
	return st, nil
}

// hashCache remembers executable digests by file identity, so that a
// binary is read once however many times its processes call. Callers of
// one file wait for one read of it, and at most hashSlots files are read
// at once: a caller can make the agent hash a large file of its own (and
// again after each touch), but not with every core, nor once per call.
type hashCache struct {
	mu      sync.Mutex
	hashes  map[hashKey]string
	skipped map[hashKey]bool // files too large to hash, already logged
	group   singleflight.Group
	reads   atomic.Int64 // files read, for tests
}

// hashSlots bounds concurrent hashing to half the cores.
var hashSlots = make(chan struct{}, max(1, runtime.NumCPU()/2))

type hashKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// tooLarge records that the file whose stat is st is too large to hash
// and reports whether that is news (first time for this file), so it is
// logged once per file, not once per call.
func (h *hashCache) tooLarge(st *syscall.Stat_t) bool {
	id := keyOf(st)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.skipped[id] {
		return false
	}
	if h.skipped == nil || len(h.skipped) >= maxCachedHashes {
		h.skipped = map[hashKey]bool{}
	}
	h.skipped[id] = true
	return true
}

func keyOf(st *syscall.Stat_t) hashKey {
	return hashKey{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

// sum returns the digest of f, whose stat is st, reading f only if no
// file with the same identity and change times was hashed before.
func (h *hashCache) sum(f *os.File, st *syscall.Stat_t) (string, error) {
	id := keyOf(st)
	h.mu.Lock()
	sum, ok := h.hashes[id]
	h.mu.Unlock()
	if ok {
		return sum, nil
	}
	v, err, _ := h.group.Do(fmt.Sprint(id), func() (any, error) {
		// Checked again: a caller that missed the cache just before an
		// earlier flight for this file stored its digest starts a flight
		// of its own, which must not read the file a second time.
		h.mu.Lock()
		cached, ok := h.hashes[id]
		h.mu.Unlock()
		if ok {
			return cached, nil
		}
		hashSlots <- struct{}{}
		defer func() { <-hashSlots }()
		h.reads.Add(1)
		d := sha256.New()
		if _, err := io.Copy(d, f); err != nil {
			return "", err
		}
		sum := hex.EncodeToString(d.Sum(nil))
		h.mu.Lock()
		if h.hashes == nil || len(h.hashes) >= maxCachedHashes {
			h.hashes = map[hashKey]string{}
		}
		h.hashes[id] = sum
		h.mu.Unlock()
		return sum, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}
