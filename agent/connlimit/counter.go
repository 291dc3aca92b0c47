package connlimit

import "sync"

// Counter bounds how many of something each uid holds at once: streams
// (agent/workload), and a Listener's connections per uid.
type Counter struct {
	Limit int

	mu    sync.Mutex
	byUID map[uint32]int
}

// Acquire takes one for uid and returns its release (safe to call more
// than once), or false if uid already holds Limit.
func (c *Counter) Acquire(uid uint32) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byUID == nil {
		c.byUID = map[uint32]int{}
	}
	if c.byUID[uid] >= c.Limit {
		return nil, false
	}
	c.byUID[uid]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.byUID[uid]--; c.byUID[uid] <= 0 {
				delete(c.byUID, uid)
			}
		})
	}, true
}

// Held returns how many uid holds now.
func (c *Counter) Held(uid uint32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byUID[uid]
}

// Full returns the lowest uid holding Limit or more (the lowest, so a
// message naming it is stable) and how many it holds; false if none does.
func (c *Counter) Full() (uid uint32, held int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for u, n := range c.byUID {
		if n >= c.Limit && (!ok || u < uid) {
			uid, held, ok = u, n, true
		}
	}
	return uid, held, ok
}
