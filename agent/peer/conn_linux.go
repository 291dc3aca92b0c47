package peer

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

func newConn(c *net.UnixConn, peerPIDFD, sockDiag bool) (*Conn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var groups []uint32
	pidfd := -1
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		cred, sockErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if sockErr != nil {
			return
		}
		if groups, sockErr = peerGroups(int(fd)); sockErr != nil || !peerPIDFD {
			return
		}
		pidfd, sockErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	})
	if err == nil {
		err = sockErr
	}
	if err != nil {
		return nil, fmt.Errorf("peer: credentials: %w", err)
	}
	if cred.Pid <= 0 {
		return nil, errors.New("peer: caller has no PID in this PID namespace")
	}
	if !peerPIDFD {
		if pidfd, err = unix.PidfdOpen(int(cred.Pid), 0); err != nil {
			return nil, fmt.Errorf("peer: pidfd_open(%d): %w", cred.Pid, err)
		}
	}
	// Record what the caller runs as soon as possible: an exec between
	// connect and this stat is the one change the agent cannot see (see
	// the package comment), so the window is kept short.
	exe, exeErr := statExe(cred.Pid)
	notCaller := credsChanged(cred.Pid, cred.Uid, cred.Gid)
	// Both reads went by PID; they describe the caller only if it is still
	// alive now.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		_ = unix.Close(pidfd)
		return nil, fmt.Errorf("peer: caller %d exited before it was accepted: %w", cred.Pid, err)
	}
	if notCaller == nil && exeErr != nil {
		notCaller = fmt.Errorf("peer: executable of caller %d: %w: %w", cred.Pid, ErrNotCaller, exeErr)
	}
	caller := Caller{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid, Groups: groups, Exe: exe, Memo: &Memo{}}
	return &Conn{UnixConn: c, caller: caller, notCaller: notCaller, pidfd: pidfd, sockDiag: sockDiag, fdHint: -1}, nil
}

// Verify reports whether the caller is still the process that was
// attested: alive (ErrGone if not), running the executable it ran when its
// connection was accepted, and holding its end of the connection (an error
// wrapping ErrNotCaller if not).
//
// Calls at once on one connection (its streams, told of one rotation
// together) share the work: checks run one at a time per connection, and
// a call that finds the last check began after it was made, and passed,
// returns that result, since that check saw the caller during the call.
func (c *Conn) Verify() error { return c.verifyAfter(c.checks.Load()) }

// verifyAfter is Verify for a call made when arrived checks had begun.
func (c *Conn) verifyAfter(arrived uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last > arrived && c.lastOK {
		return nil
	}
	n := c.checks.Add(1)
	err := c.verifyLocked()
	c.last, c.lastOK = n, err == nil
	return err
}

// verifyLocked checks the caller; c.mu is held.
func (c *Conn) verifyLocked() error {
	if c.pidfd < 0 {
		return ErrGone
	}
	// What is read by PID first, then whether the PID still names the
	// caller; a dead caller is reported as such whatever the reads said.
	checkErr := c.check()
	err := unix.PidfdSendSignal(c.pidfd, 0, nil, 0)
	switch {
	case err == nil:
		return checkErr
	case errors.Is(err, unix.ESRCH):
		return ErrGone
	default:
		return fmt.Errorf("peer: check caller %d: %w", c.caller.PID, err)
	}
}

// check runs the per-call checks that read /proc: one stat, and normally
// one readlink (the fd where the socket was found last time). c.mu is held.
func (c *Conn) check() error {
	if c.notCaller != nil {
		return c.notCaller
	}
	pid := c.caller.PID
	exe, err := statExe(pid)
	if err != nil {
		return fmt.Errorf("peer: executable of caller %d: %w", pid, err)
	}
	if exe != c.caller.Exe {
		return fmt.Errorf("peer: caller %d: %w: %w", pid, ErrExecutableChanged, ErrNotCaller)
	}
	if !c.sockDiag {
		return nil
	}
	if c.peerIno == 0 {
		if c.peerIno, err = c.lookupPeerInode(); err != nil {
			return err
		}
	}
	c.fdHint, err = holdsSocket(pid, c.peerIno, c.fdHint)
	return err
}

func (c *Conn) lookupPeerInode() (uint64, error) {
	raw, err := c.UnixConn.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	var ino uint64
	var diagErr error
	if err := raw.Control(func(fd uintptr) { ino, diagErr = peerInode(int(fd)) }); err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	return ino, diagErr
}

// Close closes the connection and the pidfd.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.pidfd >= 0 {
		_ = unix.Close(c.pidfd)
		c.pidfd = -1
	}
	c.mu.Unlock()
	return c.UnixConn.Close()
}

func supportsPeerPIDFD() bool {
	a, b, err := socketPair()
	if err != nil {
		return false
	}
	defer unix.Close(a)
	defer unix.Close(b)
	fd, err := unix.GetsockoptInt(a, unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil {
		return false
	}
	_ = unix.Close(fd)
	return true
}

func socketPair() (int, int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, err
	}
	return fds[0], fds[1], nil
}
