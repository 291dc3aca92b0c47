package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

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

// removeTempFiles deletes what an interrupted atomic write left in the data
// dir: renameio writes ".<name><random digits>" and renames it over
// <name>, so a crash between the two leaves the temp file behind, holding
// possibly a key. Nothing the agent keeps in the data dir starts with a
// dot, so such a file is never state. The bundle and the SVID files are
// written with their own directory as renameio's temp dir, so their temp
// files are always here; a writer that leaves renameio to choose may put
// its temp file in $TMPDIR instead, when that is on the same file system,
// and that one is not found. It must run with the data dir locked, or it
// could remove another agent's write in progress.
func removeTempFiles(dir string, log *slog.Logger) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			log.Warn("cannot look for interrupted writes in the data dir", "path", path, "error", err)
			return nil
		}
		if d.Type().IsRegular() && isRenameioTemp(d.Name()) {
			if err := os.Remove(path); err != nil {
				log.Warn("cannot remove a temp file left by an interrupted write", "file", path, "error", err)
			} else {
				log.Warn("removed a temp file left by an interrupted write", "file", path)
			}
		}
		return nil
	})
}

// isRenameioTemp reports whether name is "." + a file name + decimal
// digits, as renameio names its temp files.
func isRenameioTemp(name string) bool {
	rest, ok := strings.CutPrefix(name, ".")
	if !ok {
		return false
	}
	base := strings.TrimRight(rest, "0123456789")
	return base != "" && base != "." && len(base) < len(rest)
}
