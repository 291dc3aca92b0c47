package notify_test

import (
	"sync"
	"testing"

	"github.com/sworn-id/sworn/internal/notify"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestNotifyClosesEarlierChannelsOnly(t *testing.T) {
	var n notify.Notifier
	before, again := n.Changed(), n.Changed()
	if closed(before) {
		t.Fatal("Changed is closed before any Notify")
	}
	if before != again {
		t.Fatal("two Changed calls between Notifies return different channels")
	}
	n.Notify()
	if !closed(before) {
		t.Fatal("Notify did not close the channel Changed returned before it")
	}
	after := n.Changed()
	if closed(after) {
		t.Fatal("the channel Changed returns after Notify is already closed")
	}
	n.Notify()
	if !closed(after) {
		t.Fatal("the second Notify did not close the channel taken after the first")
	}
}

// TestNotifierIsSafeForConcurrentUse runs watchers and notifiers at once
// (under -race): every watcher's channel is closed by the last Notify.
func TestNotifierIsSafeForConcurrentUse(t *testing.T) {
	var n notify.Notifier
	var wg sync.WaitGroup
	chans := make(chan (<-chan struct{}), 100)
	for range 50 {
		wg.Add(2)
		go func() { defer wg.Done(); chans <- n.Changed() }()
		go func() { defer wg.Done(); n.Notify() }()
	}
	wg.Wait()
	n.Notify()
	close(chans)
	for ch := range chans {
		if !closed(ch) {
			t.Fatal("a channel taken before the last Notify is still open")
		}
	}
}
