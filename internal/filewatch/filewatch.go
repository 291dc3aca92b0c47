package filewatch

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"
)

// Watch calls onChange with the contents of path on the first tick and
// whenever they differ from the last read, checking every interval until
// ctx ends. A read that fails goes to onError and the watch goes on.
// Comparing contents catches every change, where a modification time may
// not (same size, same tick), and delivering the first read means a change
// made just before the watch started is not missed.
func Watch(ctx context.Context, path string, interval time.Duration, onChange func([]byte), onError func(error)) {
	w := &watcher{path: path, onChange: onChange, onError: onError}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.poll()
	}
}

type watcher struct {
	path     string
	last     []byte // contents last delivered; nil before the first
	onChange func([]byte)
	onError  func(error)
}

// poll reads the file once and reports what changed.
func (w *watcher) poll() {
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.onError(fmt.Errorf("filewatch: %w", err))
		return
	}
	if w.last != nil && bytes.Equal(data, w.last) {
		return
	}
	w.last = data
	w.onChange(data)
}
