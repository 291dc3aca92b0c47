package testutil

import (
	"bytes"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// CreatedIn runs f and returns the names of the files created in dir while
// it ran, as the kernel reported them (inotify), including files created
// and removed again: a temp file that held a key for a moment counts.
func CreatedIn(tb testing.TB, dir string, f func()) []string {
	tb.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		tb.Fatalf("inotify: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		tb.Fatalf("inotify watch %s: %v", dir, err)
	}
	f()
	// Events are queued before the call that caused them returns, so a
	// non-blocking read after f sees every one.
	var names []string
	buf := make([]byte, 64*1024)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN {
			return names
		}
		if err != nil {
			tb.Fatalf("inotify read: %v", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			names = append(names, string(bytes.TrimRight(name, "\x00")))
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}
