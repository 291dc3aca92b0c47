// Package atomicfile replaces files the way sworn must write keys,
// certificates and state: all at once and with exactly the mode asked for.
//
// Guarantees of Write:
//   - A reader of path sees the old file or the new one, never part of
//     one: the data is written and fsynced to a temp file in path's own
//     directory (never $TMPDIR, so never across filesystems or into a
//     directory others can read), then renamed over path.
//   - The new file has exactly mode, whatever the umask and whatever the
//     mode of the file it replaces. (renameio.WriteFile copies the old
//     file's mode, so a key file once 0644 would stay 0644 with every new
//     key.)
//   - On failure path is unchanged and the temp file is removed.
package atomicfile

import (
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// Write replaces path with data, mode exactly.
func Write(path string, data []byte, mode fs.FileMode) error {
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)),
		renameio.WithPermissions(mode), renameio.WithStaticPermissions(mode))
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer f.Cleanup()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	return nil
}
