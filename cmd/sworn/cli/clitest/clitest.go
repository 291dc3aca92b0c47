// Package clitest runs sworn commands in-process for tests, as a user would
// run them: the command tree cli.NewCommand builds, its stdout and stderr
// captured together. It is shared by the CLI's own tests and the agent's,
// which drive a running agent through `sworn` commands.
package clitest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/cmd/sworn/cli"
	"github.com/sworn-id/sworn/internal/testutil"
)

// Run runs `sworn args...` and returns what it printed; a command that
// fails fails the test, naming the command and showing its output.
func Run(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := execute(args)
	if err != nil {
		tb.Fatalf("sworn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Fail runs `sworn args...`, which must fail, and returns its error; a
// command that succeeds fails the test, showing its output.
func Fail(tb testing.TB, args ...string) error {
	tb.Helper()
	out, err := execute(args)
	if err == nil {
		tb.Fatalf("sworn %s succeeded; want it refused\n%s", strings.Join(args, " "), out)
	}
	return err
}

// execute runs `sworn args...` and returns what it printed and its error.
func execute(args []string) (string, error) {
	cmd := cli.NewCommand(context.Background())
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// Running is a long-running command (agent, oidc, proxy, svid watch)
// started by Start.
type Running struct {
	out    testutil.Buffer
	cancel context.CancelFunc
	done   chan error
}

// Start runs `sworn args...` in the background until Stop or the end of
// the test, as SIGINT would end it.
func Start(tb testing.TB, args ...string) *Running {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan error, 1)}
	cmd := cli.NewCommand(ctx)
	cmd.SetOut(&r.out)
	cmd.SetErr(&r.out)
	cmd.SetArgs(args)
	go func() { r.done <- cmd.Execute() }()
	tb.Cleanup(func() { _ = r.Stop(tb) })
	return r
}

// Output is what the command printed so far, stdout and stderr together.
func (r *Running) Output() string { return r.out.String() }

// Stop ends the command as SIGINT would and returns its error; a command
// that does not stop within 30 s fails the test.
func (r *Running) Stop(tb testing.TB) error {
	tb.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(30 * time.Second):
		tb.Fatal("the command did not stop within 30s of its context's end")
		return nil
	}
}
