package pbxtree

import (
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var fixed = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// TestDiffNamesEveryDifference: each kind of difference is one line naming the path, in path
// order, the extras last; what Compare leaves out is not reported.
func TestDiffNamesEveryDifference(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	old := fixed.Add(-time.Hour)
	for _, root := range []string{a, b} {
		WriteFile(t, filepath.Join(root, "same.conf"), []byte("same"), fixed)
		WriteFile(t, filepath.Join(root, "content.conf"), []byte("v1"), fixed)
		WriteFile(t, filepath.Join(root, "mode.conf"), []byte("m"), fixed)
		WriteFile(t, filepath.Join(root, "mtime.conf"), []byte("t"), fixed)
		WriteFile(t, filepath.Join(root, "tmp", "skipped"), []byte(root), fixed) // differs, but Skip leaves tmp/ out
		if err := os.Chtimes(filepath.Join(root, "mtime.conf"), old, old); err != nil {
			t.Fatal(err)
		}
	}
	WriteFile(t, filepath.Join(b, "content.conf"), []byte("v2"), fixed)
	WriteFile(t, filepath.Join(a, "missing.conf"), []byte("only in a"), fixed)
	WriteFile(t, filepath.Join(b, "extra.conf"), []byte("only in b"), fixed)
	WriteFile(t, filepath.Join(a, "kind"), []byte("a file in a"), fixed)
	if err := os.Mkdir(filepath.Join(b, "kind"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b, "mode.conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(b, "mtime.conf"), old.Add(time.Hour), old.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("same.conf", filepath.Join(a, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("content.conf", filepath.Join(b, "link")); err != nil {
		t.Fatal(err)
	}
	skipTmp := func(_ string, d fs.DirEntry) bool { return d.IsDir() && d.Name() == "tmp" }
	got, err := Diff(a, b, Compare{Mode: true, Mtime: true, Skip: skipTmp})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"content: content.conf",
		"kind file vs folder: kind",
		"content: link",
		"missing: missing.conf",
		"mode -rw-r--r-- vs -rw-------: mode.conf",
		"mtime: mtime.conf",
		"extra: extra.conf",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Diff:\n%q\nwant\n%q", got, want)
	}
	// Content only, regular files only: the mode, mtime, kind and symlink differences go.
	got, err = Diff(a, b, Compare{FilesOnly: true, Skip: skipTmp})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"content: content.conf", "missing: kind", "missing: missing.conf", "extra: extra.conf"}
	if !slices.Equal(got, want) {
		t.Errorf("Diff FilesOnly:\n%q\nwant\n%q", got, want)
	}
	if d, err := Diff(a, a, Compare{Mode: true, Mtime: true, Owner: true}); err != nil || len(d) > 0 {
		t.Errorf("a tree differs from itself: %q %v", d, err)
	}
}

// TestGenIsSeeded: the same seed gives the same tree and the same changes (content and
// modes; configuration files and edited audio carry the time they were written); another
// seed another tree.
func TestGenIsSeeded(t *testing.T) {
	dir := t.TempDir()
	gen := func(name string, seed uint64) (string, Stats) {
		g := NewGen(filepath.Join(dir, name), seed)
		st, err := g.Generate(0.01)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []func(int) (string, error){g.EditAudio, g.NewMessages, g.Renumber} {
			if _, err := f(2); err != nil {
				t.Fatal(err)
			}
		}
		return g.Root, st
	}
	a, sa := gen("a", 7)
	b, sb := gen("b", 7)
	c, _ := gen("c", 8)
	if sa != sb || sa.Configs != 20 || sa.Messages != 5 || sa.Files != 30 {
		t.Errorf("stats %+v and %+v, want equal with 20 configs and 5 messages", sa, sb)
	}
	if d, err := Diff(a, b, Compare{Mode: true}); err != nil || len(d) > 0 {
		t.Errorf("same seed, different trees: %q %v", d, err)
	}
	if d, err := Diff(a, c, Compare{}); err != nil || len(d) == 0 {
		t.Errorf("another seed, the same tree (%v)", err)
	}
}

// TestRsyncdServesTheCallersListener: rsync -a to a module of the daemon copies the tree, and
// the daemon's CPU time is counted once its connection process has exited.
func TestRsyncdServesTheCallersListener(t *testing.T) {
	bin, err := exec.LookPath("rsync")
	if err != nil {
		t.Skip("needs rsync")
	}
	dir := t.TempDir()
	g := NewGen(filepath.Join(dir, "src"), 1)
	if _, err := g.Generate(0.01); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")
	r, err := StartRsyncd(ln, bin, dir, map[string]string{"m": dst})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-a", "--delete", g.Root+"/", r.URL("m")).CombinedOutput()
	if err != nil {
		t.Fatalf("rsync: %v\n%s", err, out)
	}
	if r.CPU() <= 0 {
		t.Error("no CPU time counted for the daemon's connection")
	}
	if d, err := Diff(g.Root, dst, Compare{Mtime: true}); err != nil || len(d) > 0 {
		t.Errorf("rsync's copy differs: %q %v", d, err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
