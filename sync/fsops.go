package sync

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// trees gives confined access to the replicated trees: every file system call on a path that
// came over the wire goes through an os.Root, which refuses to leave the tree even through
// symlinks, so a hostile or corrupted path cannot write outside it.
type trees struct {
	paths []string
	roots []*os.Root
	owner bool

	createMu stdsync.Mutex
	// time spent creating, fsyncing and committing files (debug log of each run)
	createNs, syncNs, commitNs atomic.Int64
	dmu                        stdsync.Mutex
	dirs                       map[string]*os.File
}

func openTrees(paths []string) (*trees, error) {
	t := &trees{paths: paths, owner: os.Geteuid() == 0}
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.close()
			return nil, fmt.Errorf("sync: tree %s: %w", p, err)
		}
		r, err := os.OpenRoot(p)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("sync: tree %s: %w", p, err)
		}
		t.roots = append(t.roots, r)
	}
	return t, nil
}

func (t *trees) close() {
	t.releaseDirs()
	for _, r := range t.roots {
		r.Close()
	}
}

// resolve returns the root and relative path of a checked wire path.
func (t *trees) resolve(wp string) (*os.Root, string, error) {
	if err := checkWirePath(wp); err != nil {
		return nil, "", err
	}
	i, rel := splitWirePath(wp)
	if i >= len(t.roots) {
		return nil, "", fmt.Errorf("%w: tree %d not configured", ErrBadPath, i)
	}
	return t.roots[i], rel, nil
}

// absKey is abs for a wire path or a tree index alone (a whole tree).
func (t *trees) absKey(k string) string {
	if i, err := strconv.Atoi(k); err == nil && i >= 0 && i < len(t.paths) {
		return t.paths[i]
	}
	if checkWirePath(k) != nil {
		return k
	}
	return t.abs(k)
}

// abs returns the local path of a checked wire path (the wire path itself for a tree this
// node does not have, which a hostile peer could name).
func (t *trees) abs(wp string) string {
	i, rel := splitWirePath(wp)
	if i >= len(t.paths) {
		return wp
	}
	return filepath.Join(t.paths[i], rel)
}

func tmpName(rel string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return path.Join(path.Dir(rel), tmpPrefix+hex.EncodeToString(b[:])+".tmp")
}

// dir returns an open descriptor of folder d of tree i, opened through the tree's os.Root and
// cached until releaseDirs, so that the per-file calls (create, utimes, rename, unlink) are
// single *at system calls on a file name; the name never contains a slash, so they cannot
// leave the folder.
func (t *trees) dir(i int, d string) (*os.File, error) {
	key := strconv.Itoa(i) + "/" + d
	t.dmu.Lock()
	defer t.dmu.Unlock()
	if f, ok := t.dirs[key]; ok {
		return f, nil
	}
	f, err := t.roots[i].Open(d)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		f.Close()
		return nil, fmt.Errorf("%s: not a folder", filepath.Join(t.paths[i], d))
	}
	if t.dirs == nil {
		t.dirs = map[string]*os.File{}
	}
	t.dirs[key] = f
	return f, nil
}

// releaseDirs closes the cached folder descriptors (end of a run).
func (t *trees) releaseDirs() {
	t.dmu.Lock()
	defer t.dmu.Unlock()
	for k, f := range t.dirs {
		f.Close()
		delete(t.dirs, k)
	}
}

// createTemp creates a temporary file next to wp (same folder, so the final rename is atomic).
// It returns the file and its path relative to the tree root.
func (t *trees) createTemp(wp string) (*os.File, string, error) {
	r, rel, err := t.resolve(wp)
	if err != nil {
		return nil, "", err
	}
	i, _ := splitWirePath(wp)
	d := path.Dir(rel)
	df, err := t.dir(i, d)
	if errors.Is(err, fs.ErrNotExist) && d != "." {
		if err := r.MkdirAll(d, 0o755); err != nil {
			return nil, "", err
		}
		df, err = t.dir(i, d)
	}
	if err != nil {
		return nil, "", err
	}
	tmp := tmpName(rel)
	name := path.Base(tmp)
	// Inode creation is serialised by the file system anyway; doing it from one goroutine at
	// a time avoids burning CPU in lock spinning.
	t0 := time.Now()
	t.createMu.Lock()
	defer func() { t.createNs.Add(int64(time.Since(t0))) }()
	fd, err := unix.Openat(int(df.Fd()), name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	t.createMu.Unlock()
	if err != nil {
		return nil, "", &fs.PathError{Op: "create", Path: filepath.Join(t.paths[i], tmp), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(t.paths[i], tmp)), tmp, nil
}

// commitTemp makes a fully written temporary file durable and visible under wp: fsync, owner,
// mode, mtime, rename. The folder is fsynced later, once per folder and batch. It returns the
// final stat for the manifest.
func (t *trees) commitTemp(f *os.File, tmp, wp string, m *Meta) (fs.FileInfo, error) {
	_, rel, err := t.resolve(wp)
	if err != nil {
		return nil, err
	}
	i, _ := splitWirePath(wp)
	df, err := t.dir(i, path.Dir(rel))
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := f.Sync(); err != nil {
		return nil, err
	}
	t.syncNs.Add(int64(time.Since(t0)))
	defer func() { t.commitNs.Add(int64(time.Since(t0))) }()
	if t.owner {
		if err := f.Chown(int(m.UID), int(m.GID)); err != nil {
			return nil, err
		}
	}
	if err := f.Chmod(modeOf(m)); err != nil {
		return nil, err
	}
	ts := unix.NsecToTimespec(m.Mtime)
	dfd := int(df.Fd())
	if err := unix.UtimesNanoAt(dfd, path.Base(tmp), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fmt.Errorf("set mtime of %s: %w", f.Name(), err)
	}
	if err := unix.Renameat(dfd, path.Base(tmp), dfd, path.Base(rel)); err != nil {
		return nil, &fs.PathError{Op: "rename", Path: filepath.Join(t.paths[i], rel), Err: err}
	}
	return f.Stat()
}

func (t *trees) discardTemp(f *os.File, tmp, wp string) {
	if f != nil {
		f.Close()
	}
	if _, rel, err := t.resolve(wp); err == nil {
		i, _ := splitWirePath(wp)
		if df, err := t.dir(i, path.Dir(rel)); err == nil {
			_ = unix.Unlinkat(int(df.Fd()), path.Base(tmp), 0)
		}
	}
}

func modeOf(m *Meta) fs.FileMode {
	mode := fs.FileMode(m.Mode & 0o777)
	if m.Mode&uint32(fs.ModeSetuid) != 0 {
		mode |= fs.ModeSetuid
	}
	if m.Mode&uint32(fs.ModeSetgid) != 0 {
		mode |= fs.ModeSetgid
	}
	if m.Mode&uint32(fs.ModeSticky) != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// fsyncDir makes renames in folder dir (wire path of the folder, or "<tree>/" for the root)
// durable.
func (t *trees) fsyncDir(tree int, rel string) error {
	if tree >= len(t.roots) {
		return nil
	}
	if rel == "" {
		rel = "."
	}
	d, err := t.dir(tree, rel)
	if err != nil {
		return err
	}
	return d.Sync()
}

// locked reports whether the folder containing wp holds an Asterisk .lock file.
func (t *trees) locked(wp string) bool {
	r, rel, err := t.resolve(wp)
	if err != nil {
		return false
	}
	_, err = r.Lstat(path.Join(path.Dir(rel), ".lock"))
	return err == nil
}

// toTrash moves wp into this run's trash folder <tree>/.redundantd-trash/<stamp>/, keeping its
// tree-relative path. The trash is inside the tree, so the move is a rename on the same file
// system: it needs no free space, whatever the size of the file. Only an entry on another
// file system mounted inside the tree is copied (and the copy removed again if it fails).
// Folders it creates and does not fill are removed by cleanTrash at the end of the run.
func (t *trees) toTrash(wp, stamp string) error {
	r, rel, err := t.resolve(wp)
	if err != nil {
		return err
	}
	fi, err := r.Lstat(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if fi.IsDir() {
		// Folders go to the trash only with the files under them, which were moved first.
		err := r.Remove(rel)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotEmpty(err) {
			return err
		}
		return nil
	}
	dst := path.Join(trashDirName, stamp, rel)
	if err := r.MkdirAll(path.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("trash: %w", err)
	}
	err = r.Rename(rel, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := r.Readlink(rel)
		if err != nil {
			return err
		}
		if err := r.Symlink(target, dst); err != nil {
			return err
		}
		return r.Remove(rel)
	}
	if err := copyInRoot(r, rel, dst); err != nil {
		_ = r.Remove(dst)
		return fmt.Errorf("trash (copy from another file system): %w", err)
	}
	return r.Remove(rel)
}

// copyInRoot copies file src to a new file dst (fsynced), both inside r.
func copyInRoot(r *os.Root, src, dst string) error {
	in, err := r.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := r.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	sw := &sparseWriter{f: out}
	if _, err := io.Copy(sw, in); err != nil {
		out.Close()
		return err
	}
	if err := sw.finish(); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// cleanTrash removes the folders of this run's trash (stamp) that hold nothing, in every
// tree: a run whose deletes failed or were never applied leaves no trash folder behind.
func (t *trees) cleanTrash(stamp string) {
	for _, p := range t.paths {
		base := filepath.Join(p, trashDirName)
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(base, stamp), func(name string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, name)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i]) // fails when not empty
		}
		_ = os.Remove(base)
	}
}

// trashStamp names a run's trash folder; the name carries the time for retention.
func trashStamp(now time.Time) string { return now.UTC().Format(trashLayout) }

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}

// trashLayout is the name of a run's folder in the trash.
const trashLayout = "20060102T150405.000000000Z"

// purgeTrash removes the run folders older than keep from the trash of every tree and from
// state_dir/trash (where earlier versions kept it).
func (t *trees) purgeTrash(stateDir string, now time.Time, keep time.Duration) error {
	errs := []error{purgeTrashDir(filepath.Join(stateDir, "trash"), now, keep)}
	for _, p := range t.paths {
		errs = append(errs, purgeTrashDir(filepath.Join(p, trashDirName), now, keep))
	}
	return errors.Join(errs...)
}

func purgeTrashDir(dir string, now time.Time, keep time.Duration) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range ents {
		ts, err := time.Parse(trashLayout, e.Name())
		if err != nil {
			continue
		}
		if now.Sub(ts) > keep {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeStaleTemps deletes temporary files left by an interrupted run.
func (t *trees) removeStaleTemps() {
	for _, p := range t.paths {
		_ = filepath.WalkDir(p, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && d.Name() == trashDirName && filepath.Dir(name) == p {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
				_ = os.Remove(name)
			}
			return nil
		})
	}
}

// trashDirName is the trash folder at the root of each replicated tree (see toTrash); it is
// never replicated, and a wire path into it is refused.
const trashDirName = ".redundantd-trash"

// sparseWriter writes a new file sequentially and leaves every all-zero piece (aligned to
// sparseBlock in the file) as a hole instead of writing it, as rsync -S does: a sparse file on
// the source (a disk image, a preallocated log) stays sparse on the replica instead of
// taking its full size. It writes with pwrite at its own offset; finish sets the final
// length when the file ends in a hole. Unwritten ranges read as zeros, so the content is
// exactly what was written.
type sparseWriter struct {
	f    *os.File
	off  int64
	hole bool // the last piece was skipped
}

const sparseBlock = 4096

var zeroBlock [sparseBlock]byte

// run returns the length of the leading run of p whose aligned pieces are all zero (zero) or
// all not (!zero), starting at file offset off.
func sparseRun(p []byte, off int64, zero bool) int {
	i := 0
	for i < len(p) {
		k := min(sparseBlock-int((off+int64(i))%sparseBlock), len(p)-i)
		if bytes.Equal(p[i:i+k], zeroBlock[:k]) != zero {
			break
		}
		i += k
	}
	return i
}

func (w *sparseWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if k := sparseRun(p, w.off, false); k > 0 {
			if _, err := w.f.WriteAt(p[:k], w.off); err != nil {
				return total - len(p), err
			}
			w.off += int64(k)
			p = p[k:]
			w.hole = false
		}
		if k := sparseRun(p, w.off, true); k > 0 {
			w.off += int64(k)
			p = p[k:]
			w.hole = true
		}
	}
	return total, nil
}

// finish gives the file its full length (a trailing hole was not written).
func (w *sparseWriter) finish() error {
	if w.hole {
		return w.f.Truncate(w.off)
	}
	return nil
}

// writeSparse writes data to the new file f, leaving zero blocks as holes.
func writeSparse(f *os.File, data []byte) error {
	w := &sparseWriter{f: f}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.finish()
}
