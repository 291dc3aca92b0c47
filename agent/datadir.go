package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/secpath"
)

// checkFiles runs before anything is loaded from the data dir. It creates
// the data dir (0700) and its missing parents (0755, whatever the umask:
// they are often the socket's directory too, as with /run/sworn/data, and a
// 0700 parent would shut out every workload of another uid). It refuses to
// go on when anyone but root or the agent's uid could have written the data
// dir, what is in it or a directory above it (see package secpath): from
// there the agent takes its CA keys, its CA state, persisted SVIDs and
// trust bundles. It warns when other users cannot reach the workload socket.
func checkFiles(cfg *config.Config, log *slog.Logger) error {
	if err := secpath.MkdirAll(filepath.Dir(cfg.DataDir), 0o755); err != nil {
		return fmt.Errorf("agent: data_dir: %w", err)
	}
	if err := os.Mkdir(cfg.DataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("agent: data_dir: %w", err)
	}
	if err := secpath.CheckTree(cfg.DataDir, os.Geteuid()); err != nil {
		return fmt.Errorf("agent: data_dir: %w", err)
	}
	if dir := secpath.Unreachable(cfg.SocketPath); dir != "" && !cfg.SocketPrivate {
		log.Warn(fmt.Sprintf("workload socket %s is not reachable by other users: they cannot traverse %s, so workloads of other uids get permission denied (chmod o+x %s if they should connect)",
			cfg.SocketPath, dir, dir))
	}
	return nil
}
