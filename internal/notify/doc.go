// Package notify holds Notifier, the "closed at the next change" channel
// that sworn's sources of state (the CAs, the bundle store, the registry)
// hand to their watchers.
//
// Guarantees: a channel returned by Changed before a call to Notify is
// closed by that call; a channel returned after it is not, until the next
// Notify. A Notifier is safe for concurrent use on its own. A type that
// guards state with its own lock calls Notify after changing the state,
// under that lock, so a watcher that takes Changed first and then reads the
// state either sees the new state or holds a channel that will be closed.
package notify
