package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestHintsSayWhatToDo(t *testing.T) {
	const admin = "/run/sworn/admin.sock"
	dial := func(path, why string) error {
		return fmt.Errorf("status: %w", status.Errorf(codes.Unavailable,
			`connection error: desc = "transport: Error while dialing: dial unix %s: connect: %s"`, path, why))
	}
	tests := []struct {
		name    string
		command string // which command failed: "status" has --admin-socket
		err     error
		want    string // "" for no hint
	}{
		{name: "no agent on the admin socket", command: "status", err: dial(admin, "no such file or directory"), want: "no agent answers on the admin socket " + admin},
		{name: "agent gone from the admin socket", command: "status", err: dial(admin, "connection refused"), want: "is the agent running"},
		{name: "admin socket is root's", command: "status", err: dial(admin, "permission denied"), want: "admin_uid"},
		{name: "no agent on the workload socket", command: "fetch", err: dial("/run/sworn/workload.sock", "no such file or directory"), want: "SPIFFE_ENDPOINT_SOCKET names another"},
		{name: "workload socket shut", command: "fetch", err: dial("/run/sworn/workload.sock", "permission denied"), want: "socket_private"},
		{name: "no identity", command: "fetch", err: status.Error(codes.PermissionDenied, "no identity issued"), want: "sworn debug attest --pid"},
		{name: "bare path in the environment", command: "fetch", err: errors.New(`svid fetch from /x: workload endpoint socket URI must have a "tcp" or "unix" scheme`), want: "unix:///run/sworn/workload.sock"},
		{name: "agent as a user without the default paths", command: "agent", err: fmt.Errorf("agent: data_dir: %w", fs.ErrPermission), want: "sworn agent --dev"},
		{name: "anything else", command: "status", err: status.Error(codes.Internal, "boom"), want: ""},
	}
	geteuid = func() int { return 1000 }
	t.Cleanup(func() { geteuid = os.Geteuid })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := &cobra.Command{Use: tt.command}
			if tt.command == "status" {
				cmd.Flags().String("admin-socket", admin, "")
			}
			got := withHint(cmd, tt.err)
			if !errors.Is(got, tt.err) {
				t.Fatalf("the hinted error does not wrap the original: %v", got)
			}
			switch {
			case tt.want == "" && got.Error() != tt.err.Error():
				t.Fatalf("unexpected hint: %v", got)
			case tt.want != "" && !strings.Contains(got.Error(), "\n  hint: ") || !strings.Contains(got.Error(), tt.want):
				t.Fatalf("error %q, want a hint containing %q", got, tt.want)
			}
		})
	}
}

func TestHintsKeepTheExitStatus(t *testing.T) {
	err := withHint(&cobra.Command{Use: "write"}, &exitError{code: 3, msg: "exit status 3"})
	if ExitCode(err) != 3 {
		t.Fatalf("exit code %d, want the child's 3", ExitCode(err))
	}
}
