// Command sworn is the sworn node agent and its operator CLI.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sworn-id/sworn/cmd/sworn/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.NewCommand(ctx).Execute()
	stop()
	if err != nil {
		// Usually 1; `svid write --exec` passes on its command's status.
		os.Exit(cli.ExitCode(err))
	}
}
