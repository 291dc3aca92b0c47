package attest

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/sworn-id/sworn/internal/testutil"
)

// Many calls for one executable at once read it once: a caller cannot
// multiply the agent's hashing of a large file by calling many times. The
// "file" is a pipe, so the read blocks until every call has arrived.
func TestHashOfOneFileIsReadOncePerChange(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(r.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	var h hashCache
	const callers = 8
	var entered atomic.Int32
	var wg sync.WaitGroup
	sums := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entered.Add(1)
			sums[i], errs[i] = h.sum(r, &st)
		}()
	}
	testutil.Eventually(t, "every caller to start", func() bool { return entered.Load() >= callers })
	if _, err := w.Write([]byte("an executable")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	wg.Wait()
	if n := h.reads.Load(); n != 1 {
		t.Fatalf("the file was read %d times for %d concurrent callers, want once", n, callers)
	}
	for i := range callers {
		if errs[i] != nil || sums[i] != sums[0] {
			t.Fatalf("caller %d: %q, %v; want the one digest", i, sums[i], errs[i])
		}
	}
}
