package notify

import "sync"

// Notifier tells watchers that something changed by closing the channel
// they hold and replacing it with a fresh one. The zero value is ready to
// use.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// Changed returns a channel that the next Notify closes.
func (n *Notifier) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.current()
}

// Notify closes the channel every earlier Changed returned, and starts a
// new one for later callers.
func (n *Notifier) Notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.current())
	n.ch = make(chan struct{})
}

// current needs n.mu held; it makes the channel on first use, so the zero
// Notifier works.
func (n *Notifier) current() chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}
