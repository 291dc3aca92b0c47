// Package clitest runs sworn commands in-process for tests, as a user would
// run them: the command tree cli.NewCommand builds, its stdout and stderr
// captured together. It is shared by the CLI's own tests and the agent's,
// which drive a running agent through `sworn` commands.
package clitest

import (
	"context"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/cli"
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
