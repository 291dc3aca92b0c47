package agent

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The connection cap is derived from the open-file limit the agent raises
// at start; a soft limit left low would cap the Workload API far below
// what the node allows.
func TestRaiseFileLimitLiftsTheSoftLimitToTheHardOne(t *testing.T) {
	var before unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &before); err != nil {
		t.Fatal(err)
	}
	if before.Max < 2 {
		t.Skipf("hard open-file limit is %d; nothing to raise", before.Max)
	}
	t.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &before) })
	// A little below the hard limit: low enough to need raising, high
	// enough that tests running alongside keep their descriptors.
	lowered := unix.Rlimit{Cur: before.Max - 1, Max: before.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	got, err := raiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var after unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &after); err != nil {
		t.Fatal(err)
	}
	if got != before.Max || after.Cur != before.Max {
		t.Fatalf("raiseFileLimit = %d, soft limit now %d; want both the hard limit %d", got, after.Cur, before.Max)
	}
}
