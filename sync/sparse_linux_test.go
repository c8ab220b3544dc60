package sync

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/redundantd/redundantd/testlab/pbxtree"
)

// allocated returns the bytes a file occupies on disk.
func allocated(t *testing.T, name string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// makeSparse creates a file of size bytes holding data at each offset and holes elsewhere.
func makeSparse(t *testing.T, name string, size int64, data map[int64][]byte) {
	t.Helper()
	pbxtree.WriteFile(t, name, nil, old0)
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for off, b := range data {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(name, old0, old0); err != nil {
		t.Fatal(err)
	}
}

// TestSparseFilesStaySparse: holes in the source's files stay holes on the replica, for a
// large file streamed whole, a small one staged in memory, a delta, and a local copy (rsync
// -S writes zero blocks as holes in the same way).
func TestSparseFilesStaySparse(t *testing.T) {
	a, b := newPair(t, nil)
	const big = 16 << 20
	makeSparse(t, a.path(0, "big.img"), big, map[int64][]byte{0: randBytes(1, 5000), 8 << 20: randBytes(2, 70000), big - 100: randBytes(3, 100)})
	makeSparse(t, a.path(0, "small.img"), 3<<20, map[int64][]byte{1 << 20: randBytes(4, 9000)})
	if got := allocated(t, a.path(0, "big.img")); got > 1<<20 {
		t.Skipf("the test file system does not keep holes (%d bytes allocated)", got)
	}
	check := func(step string) {
		t.Helper()
		assertSame(t, a, b)
		for _, f := range []string{"big.img", "small.img", "copy.img", "renamed.img"} {
			if _, err := os.Stat(a.path(0, f)); err != nil {
				continue
			}
			src, dst := allocated(t, a.path(0, f)), allocated(t, b.path(0, f))
			t.Logf("%s: %s allocated %d bytes on the source, %d on the replica", step, f, src, dst)
			if dst > src+64<<10 {
				t.Errorf("%s: %s became dense on the replica: %d bytes allocated, %d on the source", step, f, dst, src)
			}
		}
	}
	st := syncNow(t, a)
	if st.FilesWhole != 2 {
		t.Errorf("first run sent %d whole, want 2", st.FilesWhole)
	}
	check("whole")

	makeSparse(t, a.path(0, "big.img"), big, map[int64][]byte{0: randBytes(1, 5000), 8 << 20: randBytes(5, 70000), big - 100: randBytes(3, 100)})
	if st := syncNow(t, a); st.FilesDelta != 1 {
		t.Errorf("edit sent %d deltas, want 1", st.FilesDelta)
	}
	check("delta")

	in, err := os.Open(a.path(0, "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(in)
	in.Close()
	holes := map[int64][]byte{}
	for off := int64(0); off < int64(len(data)); off += 4096 {
		blk := data[off:min(off+4096, int64(len(data)))]
		if strings.Trim(string(blk), "\x00") != "" {
			holes[off] = blk
		}
	}
	makeSparse(t, a.path(0, "copy.img"), big, holes)
	syncNow(t, a)
	check("new copy")

	if err := os.Rename(a.path(0, "copy.img"), a.path(0, "renamed.img")); err != nil {
		t.Fatal(err)
	}
	if st := syncNow(t, a); st.FilesLocal != 1 {
		t.Errorf("rename sent %d local, want 1", st.FilesLocal)
	}
	check("rename")
}

// TestSpecialFilesReported: FIFOs and sockets are not replicated; every run counts and names
// them in its statistics, and an event reports them when the set changes (not every run).
func TestSpecialFilesReported(t *testing.T) {
	a, b := newPair(t, nil)
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("sip"), old0)
	if err := unix.Mkfifo(a.path(0, "cli.fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", a.path(0, "ctl.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for i := range 2 {
		st := syncNow(t, a)
		if st.Special != 2 || strings.Join(st.SpecialPaths, " ") != a.path(0, "cli.fifo")+" "+a.path(0, "ctl.sock") {
			t.Errorf("run %d: special %d %q, want the FIFO and the socket", i, st.Special, st.SpecialPaths)
		}
		if len(st.Errors) > 0 {
			t.Errorf("run %d: errors %q", i, st.Errors)
		}
	}
	if ev := a.eventsOf(EventSpecial); len(ev) != 1 || !strings.Contains(ev[0].Detail, "2 FIFOs, sockets or device nodes") {
		t.Errorf("special-files events %+v, want one naming both", ev)
	}
	for _, f := range []string{"cli.fifo", "ctl.sock"} {
		if _, err := os.Lstat(b.path(0, f)); err == nil {
			t.Errorf("%s replicated", f)
		}
	}
	if err := unix.Mkfifo(a.path(0, "other.fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st := syncNow(t, a); st.Special != 3 {
		t.Errorf("special %d, want 3", st.Special)
	}
	if ev := a.eventsOf(EventSpecial); len(ev) != 2 {
		t.Errorf("%d special-files events, want a second one for the new FIFO", len(ev))
	}
	assertSameRegular(t, a, b)
}

// assertSameRegular is assertSame ignoring the source's special files.
func assertSameRegular(t *testing.T, a, b *testNode) {
	t.Helper()
	for i := range a.trees {
		for _, d := range treeDiff(t, a.trees[i], b.trees[i]) {
			if !strings.HasSuffix(d, ".fifo") && !strings.HasSuffix(d, ".sock") {
				t.Errorf("tree %d: %s", i, d)
			}
		}
	}
}

// TestSparseWriter writes content with zero runs of every alignment in chunks of several
// sizes: what is read back is exactly what was written, and the all-zero blocks are holes.
func TestSparseWriter(t *testing.T) {
	data := make([]byte, 200_000)
	copy(data[0:], randBytes(1, 10))       // data in the first block only
	copy(data[5000:], randBytes(2, 3000))  // across a block boundary
	copy(data[16384:], randBytes(3, 4096)) // one aligned block
	copy(data[100_000:], randBytes(4, 1))  // one byte
	for _, chunk := range []int{1, 1000, 4096, 7000, len(data)} {
		for _, tail := range []int{0, 1, 4096} { // ends in data or in a hole
			in := append(append([]byte(nil), data...), make([]byte, tail)...)
			if tail == 1 {
				in[len(in)-1] = 9
			}
			f, err := os.Create(t.TempDir() + "/f")
			if err != nil {
				t.Fatal(err)
			}
			w := &sparseWriter{f: f}
			for off := 0; off < len(in); off += chunk {
				if _, err := w.Write(in[off:min(off+chunk, len(in))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.finish(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(in) {
				t.Fatalf("chunk %d tail %d: content differs (len %d, want %d)", chunk, tail, len(got), len(in))
			}
			if a := allocated(t, f.Name()); a > 40<<10 {
				t.Errorf("chunk %d tail %d: %d bytes allocated for 5 data blocks", chunk, tail, a)
			}
			f.Close()
		}
	}
}
