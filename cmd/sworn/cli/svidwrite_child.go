package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ExitCode is the status sworn exits with after err: 0 for none, the
// command's own status for `svid write --exec` (128+signal when a signal
// killed it, as shells report it), else 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}

// exitError carries the exit status of the command `svid write --exec` ran.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// childExit turns what exec.Cmd.Wait returned into sworn's result: nil for
// status 0, an exitError with the status (or 128+signal) otherwise.
func childExit(name string, err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("svid write: %s: %w", name, err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &exitError{code: 128 + int(ws.Signal()), msg: fmt.Sprintf("svid write: %s was killed by %v", name, ws.Signal())}
	}
	return &exitError{code: ee.ExitCode(), msg: fmt.Sprintf("svid write: %s exited with status %d", name, ee.ExitCode())}
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

func (w *svidWriter) startChild() {
	c := &child{cmd: exec.Command(w.exec, w.args...), done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr, c.cmd.Stdin = os.Stdout, os.Stderr, os.Stdin
	if err := c.cmd.Start(); err != nil {
		w.finish(fmt.Errorf("svid write: start %s: %w", w.exec, err))
		return
	}
	w.mu.Lock()
	w.child = c
	w.mu.Unlock()
	go func() {
		err := c.cmd.Wait()
		close(c.done)
		w.mu.Lock()
		ownExit := w.child == c // not stopped by us for a restart
		if ownExit {
			w.child = nil
		}
		w.mu.Unlock()
		if ownExit {
			// The command ended on its own: so does sworn, with its status.
			w.finish(childExit(w.exec, err))
		}
	}()
}

func (w *svidWriter) signalChild() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.child != nil {
		_ = w.child.cmd.Process.Signal(w.sig)
	}
}

// stopChild ends the command (SIGTERM, then SIGKILL after 10s) and waits.
func (w *svidWriter) stopChild() {
	w.mu.Lock()
	c := w.child
	w.child = nil
	w.mu.Unlock()
	if c == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (w *svidWriter) finish(err error) {
	select {
	case w.result <- err:
	default:
	}
	w.cancel()
}

func signalPIDFile(path string, sig syscall.Signal) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("svid write: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("svid write: %s does not hold a PID", path)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("svid write: signal %d: %w", pid, err)
	}
	return nil
}
