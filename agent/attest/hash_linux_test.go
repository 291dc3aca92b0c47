package attest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/sworn-id/sworn/agent/peer"
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

// The digest of a caller's executable is computed only when a rule uses
// unix:sha256 (or an operator asks, WithDigest), and only for a file within
// MaxDigestBytes; a larger one gets no digest selector and one log line
// per file, not per call.
func TestDigestOnlyWhenNeededAndWithinTheLimit(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	self := peer.Caller{PID: int32(os.Getpid()), UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	for _, tc := range []struct {
		name       string
		need       bool
		ctx        context.Context
		limit      int64
		wantDigest bool
		wantLogs   int // after two calls
	}{
		{name: "no rule uses the digest", need: false, ctx: context.Background()},
		{name: "an operator asks for it", need: false, ctx: WithDigest(context.Background()), wantDigest: true},
		{name: "a rule uses it", need: true, ctx: context.Background(), wantDigest: true},
		{name: "a rule uses it, the file is one byte too large", need: true, ctx: context.Background(), limit: fi.Size() - 1, wantLogs: 1},
		{name: "a rule uses it, the file is exactly the limit", need: true, ctx: context.Background(), limit: fi.Size(), wantDigest: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs testutil.Buffer
			var asked Set
			need := func(known Set) bool { asked = known; return tc.need }
			u := &Unix{NeedDigest: need, MaxDigestBytes: tc.limit, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			for range 2 {
				sel, err := u.Attest(tc.ctx, self)
				if err != nil {
					t.Fatal(err)
				}
				has := slices.ContainsFunc(sel, func(s Selector) bool { return strings.HasPrefix(s.Value, "sha256:") })
				if has != tc.wantDigest {
					t.Fatalf("unix:sha256 in the selectors: %v, want %v (%v)", has, tc.wantDigest, sel)
				}
			}
			// The rules are asked with what is known of the caller, so a
			// digest rule for another uid costs this caller nothing.
			if uid := fmt.Sprintf("unix:uid:%d", os.Geteuid()); asked != nil && !slices.Contains(asked.Strings(), uid) {
				t.Fatalf("NeedDigest was asked with %v, which lacks %s", asked.Strings(), uid)
			}
			wantReads := int64(0)
			if tc.wantDigest {
				wantReads = 1
			}
			if n := u.hashes.reads.Load(); n != wantReads {
				t.Fatalf("the executable was read %d times, want %d", n, wantReads)
			}
			if n := strings.Count(logs.String(), "executable too large to hash"); n != tc.wantLogs {
				t.Fatalf("%d log lines about the size, want %d:\n%s", n, tc.wantLogs, logs.String())
			}
		})
	}
}
