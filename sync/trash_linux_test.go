package sync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/redundantd/redundantd/testlab/pbxtree"
)

// inMountNamespace re-runs the calling test in a child process with a private mount
// namespace (so its tmpfs mounts vanish with it) and reports its outcome; it returns true in
// the child, where the test goes on. Needs root.
func inMountNamespace(t *testing.T, name string) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs in a private mount namespace")
	}
	env := "SYNC_MNTNS_CHILD_" + name
	if os.Getenv(env) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), env+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		out, err := cmd.CombinedOutput()
		if strings.Contains(string(out), "--- SKIP") {
			t.Skip(string(out))
		}
		if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
			t.Fatalf("child: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "trash_linux_test.go") {
				t.Log(strings.TrimSpace(l))
			}
		}
		return false
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Skipf("cannot make mounts private: %v", err)
	}
	return true
}

// mountTmpfs mounts a tmpfs of size at dir, with dir's mode, keeping the files dir held (a
// state folder's certificate, with mode and mtime), and unmounts it at cleanup.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	type kept struct {
		data []byte
		fi   fs.FileInfo
	}
	keep := map[string]kept{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Type().IsRegular() {
			k := kept{}
			k.data, _ = os.ReadFile(filepath.Join(dir, e.Name()))
			k.fi, _ = e.Info()
			keep[e.Name()] = k
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%s,mode=%o", size, fi.Mode().Perm())); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	for n, k := range keep {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, k.data, k.fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, k.fi.ModTime(), k.fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
}

// fill writes name until its file system is full and returns a function that frees it.
func fill(t *testing.T, name string) func() {
	t.Helper()
	f, err := os.Create(name)
	if err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i) | 1
	}
	for err == nil {
		_, err = f.Write(buf)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v", name, err)
	}
	for _, n := range []int{4096, 512, 1} { // the last partial pages
		for err == nil || errors.Is(err, syscall.ENOSPC) {
			if _, err = f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	f.Close()
	return func() { os.Remove(name) }
}

// TestTrashOnFullStateDir: the Backup's state_dir is a full tmpfs. Deleting large files still
// works (the trash is a rename inside the tree, it needs no room), and nothing is left in
// state_dir; when the Backup cannot record a run there (its manifest must grow), the Master
// gets the Backup's real error ("no space left on device"), not a protocol error, and the
// pair recovers once there is room.
func TestTrashOnFullStateDir(t *testing.T) {
	if !inMountNamespace(t, "TestTrashOnFullStateDir") {
		return
	}
	a, b := newPair(t, func(_, cb *Config) { mountTmpfs(t, cb.StateDir, "1m") })
	inbox := "default/100/INBOX/"
	for i := range 3 {
		pbxtree.WriteFile(t, a.path(1, fmt.Sprintf("%smsg%04d.wav", inbox, i)), randBytes(i, 2<<20), old0)
		pbxtree.WriteFile(t, a.path(1, fmt.Sprintf("%smsg%04d.txt", inbox, i)), fmt.Appendf(nil, "[message]\nmsg=%d\n", i), old0)
	}
	syncNow(t, a)
	assertSame(t, a, b)
	free := fill(t, filepath.Join(b.state, "filler"))

	for _, f := range []string{"msg0000.wav", "msg0000.txt", "msg0001.wav", "msg0001.txt"} {
		os.Remove(a.path(1, inbox+f))
	}
	st, err := a.SyncNow(t.Context())
	t.Logf("delete of 4 MB with the Backup's state_dir full: err %v, %d deleted, errors %q", err, st.Deleted, st.Errors)
	if err != nil || st.Deleted != 4 || len(st.Errors) > 0 {
		t.Fatalf("delete with a full state_dir: %v, %d deleted, errors %q", err, st.Deleted, st.Errors)
	}
	assertSame(t, a, b)
	trashed := trashFiles(t, b)
	if len(trashed) != 4 {
		t.Errorf("trash holds %q, want the 4 files", trashed)
	}
	for _, p := range trashed {
		if !strings.HasPrefix(p, filepath.Join(b.trees[1], trashDirName)+"/") {
			t.Errorf("%s: not in the tree's own trash", p)
		}
	}

	// The manifest must grow now: the run fails with the Backup's own error.
	for i := range 400 {
		pbxtree.WriteFile(t, a.path(0, fmt.Sprintf("many/%03d-%s.conf", i, strings.Repeat("x", 100))), []byte{byte(i)}, old0)
	}
	_, err = a.SyncNow(t.Context())
	t.Logf("run the Backup cannot record: %v", err)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || strings.Contains(err.Error(), "bad path") ||
		!errors.Is(err, ErrDiskFull) {
		t.Errorf("run with the Backup's manifest unable to grow: %v, want its no-space error", err)
	}
	free()
	syncNow(t, a)
	syncNow(t, a)
	assertSame(t, a, b)
	if ents, _ := os.ReadDir(b.state); len(ents) > 0 {
		for _, e := range ents {
			if e.Name() == "trash" {
				t.Errorf("a trash folder in state_dir")
			}
		}
	}
}

// TestNoPartialTrash: a delete that fails on the Backup (its folder is immutable) leaves no
// trash folder behind, and a file on another file system mounted inside a tree goes to the
// trash by a copy.
func TestNoPartialTrash(t *testing.T) {
	if !inMountNamespace(t, "TestNoPartialTrash") {
		return
	}
	a, b := newPair(t, nil)
	pbxtree.WriteFile(t, a.path(0, "keep/a.conf"), []byte("a"), old0)
	pbxtree.WriteFile(t, a.path(0, "mnt/b.conf"), []byte("b"), old0)
	pbxtree.WriteFile(t, a.path(0, "c.conf"), []byte("c"), old0)
	mountTmpfs(t, b.path(0, "mnt"), "1m") // the replica's copy of mnt/b.conf lives on a tmpfs
	syncNow(t, a)
	assertSame(t, a, b)

	dir := b.path(0, "keep")
	setImmutable(t, dir, true)
	t.Cleanup(func() { setImmutable(t, dir, false) })
	os.Remove(a.path(0, "keep/a.conf"))
	os.Remove(a.path(0, "mnt/b.conf"))
	os.Remove(a.path(0, "c.conf"))
	st := syncNow(t, a)
	t.Logf("deletes with one folder immutable: %d deleted, errors %q", st.Deleted, st.Errors)
	if st.Deleted != 2 || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "keep/a.conf") {
		t.Errorf("%d deleted, errors %q; want 2 and the immutable one named", st.Deleted, st.Errors)
	}
	var leftovers []string
	for _, dir := range []string{filepath.Join(b.trees[0], trashDirName), filepath.Join(b.state, "trash")} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && strings.Contains(p, "keep") {
				leftovers = append(leftovers, p)
			}
			return nil
		})
	}
	if len(leftovers) > 0 {
		t.Errorf("partial trash folders left: %q", leftovers)
	}
	got := map[string]bool{}
	for _, p := range trashFiles(t, b) {
		got[filepath.Base(p)] = true
	}
	if !got["b.conf"] || !got["c.conf"] || len(got) != 2 {
		t.Errorf("trash holds %v, want b.conf (copied from the other file system) and c.conf", got)
	}
	setImmutable(t, dir, false)
	syncNow(t, a)
	assertSame(t, a, b)
}

func setImmutable(t *testing.T, dir string, on bool) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Skipf("file flags not supported here: %v", err)
	}
	if on {
		flags |= fsImmutableFl
	} else {
		flags &^= fsImmutableFl
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags)); err != nil {
		t.Skipf("cannot set the immutable flag: %v", err)
	}
}

const fsImmutableFl = 0x10 // FS_IMMUTABLE_FL, linux/fs.h
