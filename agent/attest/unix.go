package attest

import (
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
//	unix:sha256:<hex>            digest of the executable's contents
type Unix struct {
	// ProcRoot is where procfs is mounted; empty means /proc.
	ProcRoot string

	names  nameCache
	hashes hashCache
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
