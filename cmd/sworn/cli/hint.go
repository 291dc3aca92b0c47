package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// geteuid is os.Geteuid, replaced in tests that play a non-root user.
var geteuid = os.Geteuid

// hinted is an error with what to do about it on the next line.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() + "\n  hint: " + h.hint }
func (h *hinted) Unwrap() error { return h.err }

// addHints wraps the RunE of cmd and every command below it so that the
// errors an operator meets most (no agent on the socket, a socket they
// may not use, no identity, a URI without its scheme, an agent run as a
// user who cannot write its default paths) say what to do, instead of
// ending at gRPC's transport message.
func addHints(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		addHints(c)
	}
	if cmd.RunE == nil {
		return
	}
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		return withHint(c, run(c, args))
	}
}

// withHint adds a hint to err if it is one of the known cases.
func withHint(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	if h := hintFor(cmd, err); h != "" {
		return &hinted{err: err, hint: h}
	}
	return err
}

func hintFor(cmd *cobra.Command, err error) string {
	msg := err.Error()
	admin := flagValue(cmd, "admin-socket")
	onAdmin := admin != "" && strings.Contains(msg, admin)
	switch {
	case strings.Contains(msg, `must have a "tcp" or "unix" scheme`):
		return "SPIFFE_ENDPOINT_SOCKET is a URI: write unix:///run/sworn/workload.sock, not the bare path (--socket takes either)"
	case status.Code(err) == codes.Unavailable && (strings.Contains(msg, "no such file or directory") || strings.Contains(msg, "connection refused")):
		if onAdmin {
			return "no agent answers on the admin socket " + admin + ": is the agent running (systemctl status sworn, kubectl -n sworn get pods)? --admin-socket names another"
		}
		return "no agent answers on the Workload API socket: is the agent running (systemctl status sworn, kubectl -n sworn get pods)? --socket or SPIFFE_ENDPOINT_SOCKET names another"
	case status.Code(err) == codes.Unavailable && strings.Contains(msg, "permission denied"):
		if onAdmin {
			return fmt.Sprintf("the admin socket is root's: run this as root, or give uid %d the admin API with admin_uid: %d in the agent's config", geteuid(), geteuid())
		}
		return fmt.Sprintf("uid %d may not open the Workload API socket: with socket_private the agent serves only its own uid; otherwise check the modes of the socket's directories", geteuid())
	case status.Code(err) == codes.PermissionDenied && !onAdmin && cmd.Name() != "debug":
		return fmt.Sprintf("the agent gives this process no identity: as root, sworn debug attest --pid %d shows its selectors and which rules match", os.Getpid())
	case cmd.Name() == "agent" && errors.Is(err, fs.ErrPermission) && geteuid() != 0:
		return "the agent runs as root; to try it as this user, run sworn agent --dev, or give --data-dir, --socket and --admin-socket paths this user can write"
	}
	return ""
}

func flagValue(cmd *cobra.Command, name string) string {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}
