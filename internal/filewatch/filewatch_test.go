package filewatch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each step changes the file (or removes it) and polls once; want is
// everything reported so far.
var pollSteps = []struct {
	name  string
	write string // "" removes the file
	want  string
}{
	{name: "first read is delivered", write: "a", want: "change a"},
	{name: "same contents are not delivered again", write: "a", want: "change a"},
	{name: "a change is delivered", write: "b", want: "change a, change b"},
	{name: "a failed read is an error", write: "", want: "change a, change b, error"},
	{name: "contents back after an error are not a change", write: "b", want: "change a, change b, error"},
	{name: "the next change is delivered", write: "c", want: "change a, change b, error, change c"},
}

func TestPollDeliversEachChangeOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	var events []string
	w := &watcher{path: path,
		onChange: func(data []byte) { events = append(events, "change "+string(data)) },
		onError: func(err error) {
			if !strings.HasPrefix(err.Error(), "filewatch: ") || !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %v, want a filewatch: error wrapping fs.ErrNotExist", err)
			}
			events = append(events, "error")
		},
	}
	for _, step := range pollSteps {
		if step.write == "" {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(path, []byte(step.write), 0o600); err != nil {
			t.Fatal(err)
		}
		w.poll()
		if got := strings.Join(events, ", "); got != step.want {
			t.Fatalf("%s: events %q, want %q", step.name, got, step.want)
		}
	}
}

// Watch polls on its interval and returns when ctx ends.
func TestWatchDeliversTheFirstReadAndStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, path, time.Millisecond, func(data []byte) { got <- string(data) }, func(err error) { t.Error(err) })
	}()
	select {
	case s := <-got:
		if s != "a" {
			t.Fatalf("first delivery %q, want %q", s, "a")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no first delivery")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after ctx ended")
	}
}
