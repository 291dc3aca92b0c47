package attest

import (
	"context"
	"log/slog"
	"os/user"
	"strconv"
	"sync"
	"time"
)

// Unix attests the uid, gid, user, group, supplementary groups, executable
// path and executable SHA-256 of a local process. Its selectors are:
//
//	unix:uid:<uid>               effective uid at connect time (SO_PEERCRED)
//	unix:gid:<gid>               effective gid at connect time (SO_PEERCRED)
//	unix:user:<name>             name of that uid, if it has one
//	unix:group:<name>            name of that gid, if it has one
//	unix:supplementary_gid:<gid> one per supplementary group at connect time
//	                             (SO_PEERGROUPS)
//	unix:path:<path>             the path of the executable, only when the
//	                             file at that path in the agent's own mount
//	                             namespace is the file the process runs
//	unix:sha256:<hex>            digest of the executable's contents, only
//	                             when NeedDigest says a rule uses it (or the
//	                             context asks, WithDigest) and the file is
//	                             at most MaxDigestBytes
type Unix struct {
	// ProcRoot is where procfs is mounted; empty means /proc.
	ProcRoot string
	// NeedDigest reports whether a rule that uses unix:sha256 could apply
	// to a caller with the unix selectors known (every one but the
	// digest); nil means always. Hashing a new executable reads all of it
	// (a 100 MB binary takes ~250 ms), so a caller no rule could identify
	// by digest is not made to wait for one.
	NeedDigest func(known Set) bool
	// MaxDigestBytes bounds the executables hashed; a larger one gets no
	// unix:sha256 selector, and one log line per file says so. 0 means
	// DefaultMaxDigestBytes.
	MaxDigestBytes int64
	// Logger receives that line; nil discards it.
	Logger *slog.Logger

	names  nameCache
	hashes hashCache
	clock  func() time.Time // nil: time.Now; for tests of the memo's life
}

// DefaultMaxDigestBytes is Unix.MaxDigestBytes's default, and the agent
// file's limits.max_digest_bytes: larger than any single executable
// shipped in practice (Envoy, a statically linked Go service), small
// enough that one caller cannot make the agent read gigabytes.
const DefaultMaxDigestBytes = 512 << 20

type withDigest struct{}

// WithDigest returns a context under which Unix computes unix:sha256
// whether or not a rule needs it (within MaxDigestBytes), for an operator
// asking what a process would be attested as.
func WithDigest(ctx context.Context) context.Context {
	return context.WithValue(ctx, withDigest{}, true)
}

// wantDigest reports whether the digest is to be computed for a caller
// whose other unix selectors are known.
func (u *Unix) wantDigest(ctx context.Context, known Set) bool {
	return u.NeedDigest == nil || ctx.Value(withDigest{}) != nil || u.NeedDigest(known)
}

func (u *Unix) maxDigestBytes() int64 {
	if u.MaxDigestBytes <= 0 {
		return DefaultMaxDigestBytes
	}
	return u.MaxDigestBytes
}

func (u *Unix) procRoot() string {
	if u.ProcRoot == "" {
		return "/proc"
	}
	return u.ProcRoot
}

// nameCache remembers user and group names for a short while; a lookup may
// go through NSS, which can be slow, and names rarely change.
type nameCache struct {
	mu    sync.Mutex
	users map[uint32]cachedName
	grps  map[uint32]cachedName
}

type cachedName struct {
	name    string
	ok      bool
	expires time.Time
}

const nameTTL = 30 * time.Second

func (n *nameCache) user(uid uint32) (string, bool) {
	return n.lookup(&n.users, uid, func(id string) (string, error) {
		u, err := user.LookupId(id)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

func (n *nameCache) group(gid uint32) (string, bool) {
	return n.lookup(&n.grps, gid, func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

func (n *nameCache) lookup(m *map[uint32]cachedName, id uint32, resolve func(string) (string, error)) (string, bool) {
	now := time.Now()
	n.mu.Lock()
	c, hit := (*m)[id]
	n.mu.Unlock()
	if hit && now.Before(c.expires) {
		return c.name, c.ok
	}
	name, err := resolve(strconv.FormatUint(uint64(id), 10))
	c = cachedName{name: name, ok: err == nil && name != "", expires: now.Add(nameTTL)}
	n.mu.Lock()
	if *m == nil || len(*m) >= maxCachedHashes {
		*m = map[uint32]cachedName{}
	}
	(*m)[id] = c
	n.mu.Unlock()
	return c.name, c.ok
}

// maxCachedHashes bounds each of Unix's caches (digests, user and group
// names); a full cache is emptied rather than grown.
const maxCachedHashes = 4096
