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
		os.Exit(1)
	}
}
