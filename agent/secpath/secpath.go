package secpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CheckTree checks root, the directories above it and everything beneath
// it, as the package comment says. A root that does not exist yet passes
// when its nearest existing parent does: the agent creates it.
func CheckTree(root string, uid int) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("secpath: %w", err)
	}
	c := checker{uid: uid, seen: map[string]bool{}}
	return c.tree(root, false)
}

type checker struct {
	uid  int
	seen map[string]bool // resolved trees already walked, against symlink loops
}

// tree checks root and what is under it. Only the data dir itself may be
// missing (the agent creates it): a link inside it that points nowhere
// yet is refused, since whoever may create its target later (in a sticky
// /tmp, anyone) would choose what the agent reads.
func (c *checker) tree(root string, isLink bool) error {
	if err := c.ancestors(root); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(root)
	if errors.Is(err, fs.ErrNotExist) {
		if isLink {
			return fmt.Errorf("secpath: %s is a symbolic link to nothing; whoever creates its target would choose what the agent reads: remove it", root)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("secpath: %w", err)
	}
	if real != root {
		if err := c.ancestors(real); err != nil {
			return err
		}
	}
	if c.seen[real] {
		return nil
	}
	c.seen[real] = true
	return filepath.WalkDir(real, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("secpath: %w", err)
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("secpath: %w", err)
		}
		if fi.Mode().Type() == fs.ModeSymlink {
			// The link sits in a directory checked above; what it points to
			// must pass on its own.
			return c.tree(path, true)
		}
		return c.inside(path, fi)
	})
}

// ancestors checks path (when it exists) and every directory above it.
// Components that are symlinks are skipped here; tree checks what they
// resolve to.
func (c *checker) ancestors(path string) error {
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("secpath: %w", err)
		case fi.Mode().Type() == fs.ModeSymlink:
		case p == path:
			if err := c.inside(p, fi); err != nil {
				return err
			}
		default:
			if err := c.above(p, fi); err != nil {
				return err
			}
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

// above checks a directory above the tree: a sticky directory may be
// writable by all, since nobody else can rename or remove our entry in it.
func (c *checker) above(path string, fi fs.FileInfo) error {
	if err := c.owner(path, fi, "root"); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 && (fi.Mode()&fs.ModeSticky == 0 || !fi.IsDir()) {
		return writable(path, fi)
	}
	return nil
}

// inside checks the root of the tree or something in it.
func (c *checker) inside(path string, fi fs.FileInfo) error {
	if err := c.owner(path, fi, fmt.Sprint(c.uid)); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return writable(path, fi)
	}
	return nil
}

func (c *checker) owner(path string, fi fs.FileInfo, fix string) error {
	uid, ok := owner(fi)
	if !ok || uid == 0 || uid == c.uid {
		return nil
	}
	return fmt.Errorf("secpath: %s is owned by uid %d, but only root or the agent's uid %d may own what the agent trusts (chown %s %s)", path, uid, c.uid, fix, path)
}

func writable(path string, fi fs.FileInfo) error {
	return fmt.Errorf("secpath: %s has mode %v: group or others can write it and plant or replace what the agent trusts (chmod go-w %s)", path, fi.Mode(), path)
}

// Unreachable returns the first directory on path's way from / that others
// (users other than its owner and group) cannot traverse, or "" if there is
// none. A socket under such a directory refuses their connections.
func Unreachable(path string) string {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return ""
	}
	var dirs []string
	for p := dir; ; p = filepath.Dir(p) {
		dirs = append(dirs, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		fi, err := os.Stat(dirs[i])
		if err == nil && fi.Mode().Perm()&0o001 == 0 {
			return dirs[i]
		}
	}
	return ""
}

// MkdirAll creates path and any missing parent with mode perm exactly: the
// umask does not narrow it. Directories that exist keep their mode.
func MkdirAll(path string, perm fs.FileMode) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("secpath: %w", err)
	}
	if fi, err := os.Stat(path); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("secpath: %s exists and is not a directory", path)
		}
		return nil
	}
	if parent := filepath.Dir(path); parent != path {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(path, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // made meanwhile by someone else; its mode is theirs
		}
		return fmt.Errorf("secpath: %w", err)
	}
	afterMkdir(path)
	// Chmod the directory made, not what path names now: whoever can write
	// the parent may have put a link there since, and chmod by path (as
	// root) would change the link's target.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("secpath: %s changed after it was created: %w", path, err)
	}
	defer f.Close()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("secpath: %w", err)
	}
	return nil
}

// afterMkdir lets a test act between mkdir and chmod, where a swap would land.
var afterMkdir = func(string) {}

// PrivateDir makes sure path is a directory that only uid can use, for
// sockets that must not be replaced by anyone else: it creates it 0700
// when missing; one that exists must be a directory (not a symlink) owned
// by uid with no permission for group or others.
func PrivateDir(path string, uid int) error {
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("secpath: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("secpath: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("secpath: %s is a %v, not a directory; someone else may control it (remove it, or use another path)", path, fi.Mode().Type())
	}
	if owner, ok := owner(fi); ok && owner != uid {
		return fmt.Errorf("secpath: %s is owned by uid %d, not %d: that user could replace the socket in it and pose as the agent (remove it, or use another path)", path, owner, uid)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secpath: %s has mode %v: others could replace the socket in it and pose as the agent (chmod 700 %s)", path, fi.Mode().Perm(), path)
	}
	return nil
}
