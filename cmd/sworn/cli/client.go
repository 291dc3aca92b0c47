package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/agent/config"
)

// workloadFlags are shared by the commands that call the Workload API.
type workloadFlags struct {
	socket  string
	timeout time.Duration
}

func (w *workloadFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&w.socket, "socket", "", "Workload API socket: a path or unix:// URI (default $SPIFFE_ENDPOINT_SOCKET, else unix://"+config.DefaultSocketPath+")")
	cmd.Flags().DurationVar(&w.timeout, "timeout", 10*time.Second, "how long to wait for the agent")
}

// address returns the Workload API address as go-spiffe expects it.
func (w *workloadFlags) address() string {
	switch {
	case w.socket != "":
		return socketURI(w.socket)
	case os.Getenv("SPIFFE_ENDPOINT_SOCKET") != "":
		return os.Getenv("SPIFFE_ENDPOINT_SOCKET")
	}
	return "unix://" + config.DefaultSocketPath
}

func (w *workloadFlags) clientOption() workloadapi.ClientOption {
	return workloadapi.WithAddr(w.address())
}

// socketURI turns a --socket value into the unix:// URI gRPC and
// go-spiffe take. A relative path is made absolute first: "unix://" + "run/x"
// would read "run" as the URI's authority.
func socketURI(s string) string {
	if strings.Contains(s, "://") {
		return s
	}
	if abs, err := filepath.Abs(s); err == nil {
		s = abs
	}
	return "unix://" + s
}

// adminFlags are shared by the operator commands.
type adminFlags struct {
	socket  string
	timeout time.Duration
}

func (a *adminFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.socket, "admin-socket", config.DefaultAdminSocketPath, "the agent's admin socket")
	cmd.Flags().DurationVar(&a.timeout, "timeout", 10*time.Second, "how long to wait for the agent")
}

// call connects to the admin API and runs f with a client and a context
// bounded by --timeout.
func (a *adminFlags) call(cmd *cobra.Command, f func(context.Context, adminpb.AdminClient) error) error {
	conn, err := grpc.NewClient(socketURI(a.socket), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", a.socket, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
	defer cancel()
	return f(ctx, adminpb.NewAdminClient(conn))
}
