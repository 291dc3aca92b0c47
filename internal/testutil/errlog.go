package testutil

import "sync"

// ErrorLog records the errors a callback is given (a backend's OnHealth,
// say), nil included, for a test to read while the callback may still run.
type ErrorLog struct {
	mu   sync.Mutex
	errs []error
}

// Add records err; pass it as the callback.
func (l *ErrorLog) Add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

// Len is how many errors were recorded.
func (l *ErrorLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.errs)
}

// Since returns a copy of the errors recorded after the first n.
func (l *ErrorLog) Since(n int) []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs[n:]...)
}
