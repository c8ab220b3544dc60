package pbxtree

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Compare says what Diff compares besides each entry's kind (folder, file, symlink, other)
// and content (a file's bytes, a symlink's target).
type Compare struct {
	Mode  bool // permission and mode bits of everything but symlinks
	Mtime bool // modification time of regular files
	Owner bool // owning uid
	// FilesOnly compares regular files only: folders are walked but not compared, symlinks
	// and special files are left out.
	FilesOnly bool
	// Skip leaves entries out on both sides (a folder with everything in it): what the
	// replication never copies, for example. rel is slash-separated, relative to the root.
	Skip func(rel string, d fs.DirEntry) bool
}

type entry struct {
	kind  string
	size  int64
	link  string
	mode  fs.FileMode
	mtime int64
	uid   uint32
}

// Diff compares the trees under a and b (the roots themselves excepted) and returns one line
// per difference, "what: path", sorted by path: missing (in a only), extra (in b only),
// kind, content, mode, mtime, owner. Files are compared byte by byte.
func Diff(a, b string, c Compare) ([]string, error) {
	ea, err := load(a, c)
	if err != nil {
		return nil, err
	}
	eb, err := load(b, c)
	if err != nil {
		return nil, err
	}
	var diffs []string
	for _, rel := range slices.Sorted(maps.Keys(ea)) {
		d, err := c.entryDiff(a, b, rel, ea[rel], eb)
		if err != nil {
			return nil, err
		}
		if d != "" {
			diffs = append(diffs, d)
		}
	}
	var extra []string
	for k := range eb {
		if _, ok := ea[k]; !ok {
			extra = append(extra, "extra: "+k)
		}
	}
	slices.Sort(extra)
	return append(diffs, extra...), nil
}

// entryDiff describes how b's entry at rel differs from x, a's; "" when it does not.
func (c Compare) entryDiff(a, b, rel string, x entry, eb map[string]entry) (string, error) {
	y, ok := eb[rel]
	switch {
	case !ok:
		return "missing: " + rel, nil
	case x.kind != y.kind:
		return fmt.Sprintf("kind %s vs %s: %s", x.kind, y.kind, rel), nil
	case x.kind == "symlink" && x.link != y.link, x.kind == "file" && x.size != y.size:
		return "content: " + rel, nil
	}
	if x.kind == "file" {
		same, err := sameContent(filepath.Join(a, rel), filepath.Join(b, rel))
		if err != nil {
			return "", err
		}
		if !same {
			return "content: " + rel, nil
		}
	}
	switch {
	case c.Mode && x.kind != "symlink" && x.mode != y.mode:
		return fmt.Sprintf("mode %v vs %v: %s", x.mode, y.mode, rel), nil
	case c.Mtime && x.kind == "file" && x.mtime != y.mtime:
		return "mtime: " + rel, nil
	case c.Owner && x.uid != y.uid:
		return fmt.Sprintf("owner %d vs %d: %s", x.uid, y.uid, rel), nil
	}
	return "", nil
}

func load(root string, c Compare) (map[string]entry, error) {
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if c.Skip != nil && c.Skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if c.FilesOnly && !d.Type().IsRegular() {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{mode: fi.Mode(), size: fi.Size()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			e.uid = st.Uid
		}
		switch {
		case fi.IsDir():
			e.kind = "folder"
		case fi.Mode()&fs.ModeSymlink != 0:
			e.kind = "symlink"
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			e.kind = "file"
			e.mtime = fi.ModTime().UnixNano()
		default:
			e.kind = "other" // FIFO, socket, device: never opened
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// sameContent compares two files of the same size byte by byte.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 256<<10), make([]byte, 256<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			return ea != nil && eb != nil, nil
		}
	}
}
