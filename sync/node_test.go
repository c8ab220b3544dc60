package sync

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/pbxtree"
	"github.com/redundantd/redundantd/testlab/poll"
)

// listen opens a loopback listener for a test node's sync port; the node's Run closes it.
func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

type testNode struct {
	*Node
	ln     net.Listener // the sync port Run serves
	root   string
	trees  []string
	state  string
	mu     stdsync.Mutex
	events []Event
	cancel context.CancelFunc
	done   chan error
}

func (tn *testNode) eventsOf(k EventKind) []Event {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	var out []Event
	for _, e := range tn.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func (tn *testNode) path(tree int, rel string) string {
	return filepath.Join(tn.trees[tree], filepath.FromSlash(rel))
}

// newPair starts two nodes on loopback; a is the source, b the replica. tweak sees each
// Peer set to the other node's listener.
func newPair(t testing.TB, tweak func(a, b *Config)) (*testNode, *testNode) {
	t.Helper()
	return newPairOn(t, "127.0.0.1:0", "127.0.0.1:0", tweak)
}

// newPairOn is newPair with a's and b's sync ports opened on the given addresses.
func newPairOn(t testing.TB, addrA, addrB string, tweak func(a, b *Config)) (*testNode, *testNode) {
	t.Helper()
	addrs := map[string]string{"a": addrA, "b": addrB}
	dir := t.TempDir()
	mk := func(name string) (*testNode, Config) {
		tn := &testNode{root: filepath.Join(dir, name)}
		tn.trees = []string{filepath.Join(tn.root, "etc"), filepath.Join(tn.root, "voicemail")}
		tn.state = filepath.Join(tn.root, "state")
		for _, p := range tn.trees {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		tn.ln = listen(t, addrs[name])
		return tn, Config{Paths: tn.trees, StateDir: tn.state, Interval: "1h"}
	}
	a, ca := mk("a")
	b, cb := mk("b")
	fa, err := LocalFingerprint(a.state)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := LocalFingerprint(b.state)
	if err != nil {
		t.Fatal(err)
	}
	ca.Peer, ca.PeerFingerprint = b.ln.Addr().String(), fb
	cb.Peer, cb.PeerFingerprint = a.ln.Addr().String(), fa
	if tweak != nil {
		tweak(&ca, &cb)
	}
	for _, x := range []struct {
		tn *testNode
		c  Config
	}{{a, ca}, {b, cb}} {
		tn := x.tn
		x.c.OnEvent = func(e Event) {
			tn.mu.Lock()
			tn.events = append(tn.events, e)
			tn.mu.Unlock()
		}
		n, err := New(x.c)
		if err != nil {
			t.Fatal(err)
		}
		tn.Node = n
		tn.start(t)
	}
	b.SetRole(RoleReplica)
	a.SetRole(RoleSource)
	// Becoming the source starts a run at once; let it finish so that tests count their own.
	poll.Until(t, 10*time.Second, "a run after becoming source", func() bool { return len(a.eventsOf(EventRun)) > 0 })
	return a, b
}

func (tn *testNode) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tn.cancel = cancel
	tn.done = make(chan error, 1)
	go func() { tn.done <- tn.Run(ctx, tn.ln) }()
	select {
	case <-tn.Ready():
	case err := <-tn.done:
		t.Fatalf("node did not start: %v", err)
	}
	t.Cleanup(tn.stop)
}

// onSendChunk sets (nil clears) the hook run after each chunk this node reads for sending.
func (tn *testNode) onSendChunk(f func(name string)) {
	if f == nil {
		tn.sendChunkHook.Store(nil)
		return
	}
	tn.sendChunkHook.Store(&f)
}

func (tn *testNode) stop() {
	if tn.cancel != nil {
		tn.cancel()
		<-tn.done
		tn.cancel = nil
	}
}

// treeDiff compares two trees (kind, content, mode, mtime of files, owner) with
// pbxtree.Diff, ignoring what is never replicated (tmp/ folders, the trash, .lock and
// temporary files).
func treeDiff(t testing.TB, a, b string) []string {
	t.Helper()
	d, err := pbxtree.Diff(a, b, pbxtree.Compare{Mode: true, Mtime: true, Owner: true, Skip: notReplicated})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// notReplicated says which entries the replication leaves alone (pbxtree.Compare.Skip).
func notReplicated(rel string, d fs.DirEntry) bool {
	if d.IsDir() {
		return skipName(d.Name(), true) || rel == trashDirName
	}
	return skipName(d.Name(), false)
}

func assertSame(t *testing.T, a, b *testNode) {
	t.Helper()
	for i := range a.trees {
		if d := treeDiff(t, a.trees[i], b.trees[i]); len(d) > 0 {
			if len(d) > 10 {
				d = append(d[:10], "...")
			}
			t.Fatalf("tree %d differs:\n%s", i, strings.Join(d, "\n"))
		}
	}
}

func syncNow(t *testing.T, n *testNode) RunStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := n.SyncNow(ctx)
	if err != nil {
		t.Fatalf("SyncNow: %v (stats %+v)", err, st)
	}
	return st
}

func randBytes(seed, n int) []byte {
	b := make([]byte, n)
	x := uint64(seed)*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

var old = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

func TestReplicateAndNoChange(t *testing.T) {
	a, b := newPair(t, nil)
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte(strings.Repeat("[general]\ncontext=default\n", 200)), old)
	pbxtree.WriteFile(t, a.path(0, "sub/extensions.conf"), []byte("exten => 100,1,Dial(SIP/100)\n"), old)
	pbxtree.WriteFile(t, a.path(1, "default/100/INBOX/msg0000.wav"), randBytes(1, 300<<10), old)
	pbxtree.WriteFile(t, a.path(1, "default/100/INBOX/msg0000.txt"), []byte("[message]\norigmailbox=100\n"), old)
	if err := os.Chmod(a.path(0, "sip.conf"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(a.path(1, "default/100/Old"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sip.conf", a.path(0, "sip-link.conf")); err != nil {
		t.Fatal(err)
	}
	st := syncNow(t, a)
	assertSame(t, a, b)
	if st.Files < 5 || st.Duration <= 0 {
		t.Errorf("initial run: %+v", st)
	}

	st = syncNow(t, a)
	if st.Full || st.Files != 0 || st.BytesSent+st.BytesRecv > 2048 {
		t.Errorf("no-change run: full=%v files=%d bytes=%d+%d, want incremental, 0 files, < 2 KB",
			st.Full, st.Files, st.BytesSent, st.BytesRecv)
	}

	// Edit keeping size and mtime: the hash must notice it (ctime moved).
	data := randBytes(1, 300<<10)
	copy(data[1000:], []byte("edited in place"))
	pbxtree.WriteFile(t, a.path(1, "default/100/INBOX/msg0000.wav"), data, old)
	if err := os.Remove(a.path(0, "sub/extensions.conf")); err != nil {
		t.Fatal(err)
	}
	st = syncNow(t, a)
	assertSame(t, a, b)
	if st.FilesDelta != 1 || st.Deleted != 1 || st.Literal > 8<<10 {
		t.Errorf("edit run: delta=%d deleted=%d literal=%d, want 1 delta of a few KB and 1 delete", st.FilesDelta, st.Deleted, st.Literal)
	}
	// The deleted file is in the replica's trash.
	found := false
	_ = filepath.WalkDir(filepath.Join(b.trees[0], trashDirName), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "extensions.conf" {
			found = true
		}
		return nil
	})
	if !found {
		t.Error("deleted file not found in the replica's trash")
	}
	if s := a.Status(); !s.PeerConnected || s.LastError != "" || s.Runs != 4 {
		t.Errorf("status: %+v", s)
	}
	if len(a.eventsOf(EventRun)) != 4 {
		t.Errorf("run events: %d, want 4", len(a.eventsOf(EventRun)))
	}
}

func TestWatchPushesChanges(t *testing.T) {
	a, b := newPair(t, func(ca, _ *Config) { ca.Watch = true })
	runs := len(a.eventsOf(EventRun))
	// The watcher is up: Run closed Ready after it watched the trees.
	pbxtree.WriteFile(t, a.path(1, "default/100/INBOX/msg0000.wav"), []byte("new message"), time.Time{})
	poll.Until(t, 5*time.Second, "the change pushed without a scheduled run", func() bool {
		data, err := os.ReadFile(b.path(1, "default/100/INBOX/msg0000.wav"))
		return err == nil && string(data) == "new message"
	})
	// The replica applies before the source reports the run.
	poll.Until(t, 5*time.Second, "a run event for the pushed change", func() bool { return len(a.eventsOf(EventRun)) > runs })
}

// TestWatchSkipsWalkSafely: with watch on, a source run trusts the watcher instead of walking
// the trees, but a change made just before SyncNow is never missed.
func TestWatchSkipsWalkSafely(t *testing.T) {
	a, b := newPair(t, func(ca, _ *Config) { ca.Watch = true; ca.Interval = "24h" })
	name := a.path(0, "sip.conf")
	pbxtree.WriteFile(t, name, []byte("version 000"), old)
	syncNow(t, a)
	for i := 1; i <= 20; i++ {
		// Same size and mtime: only the content (and ctime) differ.
		pbxtree.WriteFile(t, name, fmt.Appendf(nil, "version %03d", i), old)
		syncNow(t, a)
		if got, _ := os.ReadFile(b.path(0, "sip.conf")); string(got) != fmt.Sprintf("version %03d", i) {
			t.Fatalf("change %d missed: replica has %q", i, got)
		}
	}
	st := syncNow(t, a)
	if st.Files != 0 || st.Full {
		t.Errorf("idle run: %+v", st)
	}
}

// TestReplicaChangeSeenAfterIdleRuns: the replica skips its walk when its watcher saw nothing,
// but a change made there between runs is still found (and, made on the replica only, kept).
func TestReplicaChangeSeenAfterIdleRuns(t *testing.T) {
	a, b := newPair(t, nil)
	pbxtree.WriteFile(t, a.path(0, "queues.conf"), []byte("original"), old)
	syncNow(t, a)
	syncNow(t, a)
	syncNow(t, a)
	pbxtree.WriteFile(t, b.path(0, "queues.conf"), []byte("edited on the backup"), old)
	st := syncNow(t, a)
	if got, _ := os.ReadFile(a.path(0, "queues.conf")); string(got) != "edited on the backup" || st.Pulled != 1 {
		t.Fatalf("replica-only change not taken over: %q (pulled %d)", got, st.Pulled)
	}
	assertSame(t, a, b)
}

// TestFolderBecomesFileAndBack: a path that changes kind on the source follows on the replica.
func TestFolderBecomesFileAndBack(t *testing.T) {
	a, b := newPair(t, nil)
	pbxtree.WriteFile(t, a.path(0, "extra/inner.conf"), []byte("inside"), old)
	pbxtree.WriteFile(t, a.path(0, "extra/sub/deeper.conf"), []byte("deeper"), old)
	syncNow(t, a)
	if err := os.RemoveAll(a.path(0, "extra")); err != nil {
		t.Fatal(err)
	}
	pbxtree.WriteFile(t, a.path(0, "extra"), []byte("now a file"), old)
	st := syncNow(t, a)
	assertSame(t, a, b)
	if len(st.Errors) != 0 {
		t.Errorf("errors: %q", st.Errors)
	}
	if err := os.Remove(a.path(0, "extra")); err != nil {
		t.Fatal(err)
	}
	pbxtree.WriteFile(t, a.path(0, "extra/again.conf"), []byte("a folder again"), old)
	syncNow(t, a)
	assertSame(t, a, b)
}

// TestDialFromCaller: with Config.Dial the source reaches its peer through the caller's
// dialer only (a lab dials inside a namespace); Peer then only names the peer, and may be
// empty.
func TestDialFromCaller(t *testing.T) {
	var dials atomic.Int32
	a, b := newPair(t, func(ca, _ *Config) {
		addr := ca.Peer
		ca.Peer = ""
		ca.Dial = func(ctx context.Context) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	})
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("sip"), old0)
	syncNow(t, a)
	assertSame(t, a, b)
	if dials.Load() == 0 {
		t.Error("the source did not dial through Config.Dial")
	}
	if got := a.eventsOf(EventPeerConnected); len(got) == 0 || got[0].Detail != "peer" {
		t.Errorf("peer-connected events %+v, want one naming \"peer\"", got)
	}
}

// TestRunNeedsAListener: Run without a listener is an error, not a node without a port.
func TestRunNeedsAListener(t *testing.T) {
	dir := t.TempDir()
	peer, err := LocalFingerprint(filepath.Join(dir, "peer"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Paths: []string{filepath.Join(dir, "etc")}, StateDir: filepath.Join(dir, "state"),
		Peer: "127.0.0.1:1", PeerFingerprint: peer})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(context.Background(), nil); err == nil {
		t.Fatal("Run with a nil listener returned nil")
	}
	select {
	case <-n.Ready():
		t.Error("Ready closed although Run never served")
	default:
	}
}
