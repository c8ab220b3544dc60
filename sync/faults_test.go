package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/redundantd/redundantd/testlab/pbxtree"
	"github.com/redundantd/redundantd/testlab/poll"
)

// noTemps fails when a temporary file of ours is left in any tree.
func noTemps(t *testing.T, tn *testNode) {
	t.Helper()
	for _, root := range tn.trees {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), tmpPrefix) {
				t.Errorf("temporary file left behind: %s", p)
			}
			return nil
		})
	}
}

// noPartial checks that every file on the replica is either absent on the source or equal to
// it, or equal to what it was before (old): no reader can ever see a half-written file.
func noPartial(t *testing.T, a, b *testNode, old map[string][]byte) {
	t.Helper()
	for i, root := range b.trees {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			got, _ := os.ReadFile(p)
			want, err := os.ReadFile(filepath.Join(a.trees[i], rel))
			if err == nil && bytes.Equal(got, want) {
				return nil
			}
			if o, ok := old[p]; ok && bytes.Equal(o, got) {
				return nil
			}
			t.Errorf("partial or foreign content on the replica: %s", p)
			return nil
		})
	}
}

// cutProxy forwards TCP to target and cuts every connection after limit bytes from the
// client while armed.
type cutProxy struct {
	ln     net.Listener
	target string
	limit  atomic.Int64
	cuts   atomic.Int32
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.handle(c)
		}
	}()
	return p
}

func (p *cutProxy) handle(c net.Conn) {
	defer c.Close()
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { io.Copy(c, u); c.Close() }()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := c.Read(buf)
		if k > 0 {
			if lim := p.limit.Load(); lim > 0 && n+int64(k) > lim {
				u.Write(buf[:lim-n])
				p.cuts.Add(1)
				return
			}
			n += int64(k)
			if _, err := u.Write(buf[:k]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func TestConnectionCutMidFile(t *testing.T) {
	var proxy *cutProxy
	a, b := newPair(t, func(ca, _ *Config) {
		proxy = newCutProxy(t, ca.Peer) // the replica's listener
		ca.Peer = proxy.ln.Addr().String()
	})
	old := map[string][]byte{}
	pbxtree.WriteFile(t, a.path(1, "default/100/INBOX/msg0000.wav"), randBytes(1, 200<<10), old0)
	syncNow(t, a)
	prev, _ := os.ReadFile(b.path(1, "default/100/INBOX/msg0000.wav"))
	old[b.path(1, "default/100/INBOX/msg0000.wav")] = prev
	for i := 0; i < 4; i++ {
		pbxtree.WriteFile(t, a.path(1, fmt.Sprintf("default/100/INBOX/msg%04d.wav", i)), randBytes(10+i, 3<<20), old0)
	}
	proxy.limit.Store(5 << 20) // cut in the middle of the second file
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.SyncNow(ctx); err == nil {
		t.Fatal("run through a cut connection succeeded")
	}
	if proxy.cuts.Load() == 0 {
		t.Fatal("proxy did not cut")
	}
	// The replica notices the cut and cleans up.
	// (at most 5 s: runMu below waits for the session's end in any case)
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = poll.Context(wctx, poll.Step, func() bool { return !b.Status().PeerConnected })
	wcancel()
	b.runMu.Lock() // the aborted session has finished with the trees; none starts while checking
	noTemps(t, b)
	noPartial(t, a, b, old)
	b.runMu.Unlock()
	proxy.limit.Store(0)
	syncNow(t, a)
	assertSame(t, a, b)
	noTemps(t, b)
}

var old0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestWrongPeerRefused(t *testing.T) {
	a, b := newPair(t, nil)
	// A third node with its own certificate poses as the source.
	dir := t.TempDir()
	evil, err := New(Config{Paths: a.trees, StateDir: filepath.Join(dir, "state"), Peer: b.ln.Addr().String(),
		PeerFingerprint: b.fp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evil.dial(context.Background()); err == nil {
		t.Fatal("replica accepted a connection from an unknown certificate")
	}
	poll.Until(t, 5*time.Second, "the wrong-peer event", func() bool { return len(b.eventsOf(EventWrongPeer)) > 0 })
	if !strings.Contains(b.eventsOf(EventWrongPeer)[0].Detail, evil.fp) {
		t.Errorf("event does not name the certificate seen: %q", b.eventsOf(EventWrongPeer)[0].Detail)
	}
	// The source, pinned on b, refuses a server with another certificate.
	evilLn := listen(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go evil.Run(ctx, evilLn)
	<-evil.Ready()
	a.cfg.Peer = evilLn.Addr().String()
	a.runMu.Lock()
	if a.conn != nil {
		a.conn.Close()
		a.conn = nil
	}
	a.runMu.Unlock()
	if _, err := a.SyncNow(context.Background()); !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("SyncNow to a wrong peer: %v, want ErrWrongPeer", err)
	}
	if len(a.eventsOf(EventWrongPeer)) == 0 {
		t.Error("no wrong-peer event on the source")
	}
}

// TestHostileFrames speaks the protocol with the right certificate but sends traversal and
// absolute paths: the replica drops the session and writes nothing outside its trees.
func TestHostileFrames(t *testing.T) {
	a, b := newPair(t, nil)
	outside := filepath.Join(b.root, "outside")
	for _, path := range []string{"0/../../outside", "/" + outside, "1/../../../outside", "0/a/../../outside"} {
		pc, err := a.dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.sendRaw(MsgBegin, nil); err != nil {
			t.Fatal(err)
		}
		var st stateMsg
		if err := pc.expect(MsgState, &st); err != nil {
			t.Fatal(err)
		}
		// Encode by hand: the marshaller does not validate, the replica must.
		e := enc{}
		e.str(path)
		(&Meta{Kind: KindFile, Size: 4, Mode: 0o644, Hash: hashBytes([]byte("evil"))}).encode(&e)
		e.u8(methodFull)
		e.str("")
		e.boolean(false)
		e.hash(Hash{})
		e.uv(0)
		_ = pc.sendRaw(MsgFile, e.b)
		_, _ = pc.sendData([]byte("evil"), false)
		_ = pc.send(MsgFileEnd, &fileEndMsg{Hash: hashBytes([]byte("evil"))})
		_ = pc.sendRaw(MsgCommit, nil)
		err = pc.expect(MsgResult, &resultMsg{})
		if err == nil {
			t.Errorf("path %q: replica answered the commit", path)
		}
		pc.Close()
		if _, err := os.Stat(outside); err == nil {
			t.Fatalf("path %q: file written outside the tree", path)
		}
	}
	// A symlink whose target leaves the trees is refused by the replica too.
	pc, err := a.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_ = pc.sendRaw(MsgBegin, nil)
	if err := pc.expect(MsgState, &stateMsg{}); err != nil {
		t.Fatal(err)
	}
	_ = pc.send(MsgFile, &fileMsg{Path: "0/evil-link", Method: methodSymlink, Meta: Meta{Kind: KindSymlink, Target: "/etc/passwd"}})
	_ = pc.sendRaw(MsgCommit, nil)
	var r resultMsg
	if err := pc.expect(MsgResult, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Failed) != 1 || !strings.Contains(r.Failed[0].Err, "leaves the replicated trees") {
		t.Errorf("result %+v, want the symlink refused", r)
	}
	if _, err := os.Lstat(b.path(0, "evil-link")); err == nil {
		t.Error("symlink to /etc/passwd created on the replica")
	}
}

func TestSymlinkOutsideSkipped(t *testing.T) {
	a, b := newPair(t, nil)
	pbxtree.WriteFile(t, a.path(0, "sip.conf"), []byte("x"), old0)
	if err := os.Symlink("/etc/passwd", a.path(0, "passwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../outside", a.path(0, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sip.conf", a.path(0, "inside")); err != nil {
		t.Fatal(err)
	}
	st := syncNow(t, a)
	for _, name := range []string{"passwd", "up"} {
		if _, err := os.Lstat(b.path(0, name)); err == nil {
			t.Errorf("symlink %s pointing outside was replicated", name)
		}
	}
	if l, err := os.Readlink(b.path(0, "inside")); err != nil || l != "sip.conf" {
		t.Errorf("inside symlink: %q %v", l, err)
	}
	if n := len(st.Errors); n != 2 {
		t.Errorf("errors %q, want the 2 outside symlinks reported", st.Errors)
	}
}

func TestFileChangingWhileRead(t *testing.T) {
	a, b := newPair(t, nil)
	name := a.path(1, "default/100/INBOX/msg0000.wav")
	pbxtree.WriteFile(t, name, randBytes(1, 2<<20), old0)
	pbxtree.WriteFile(t, a.path(0, "other.conf"), []byte("other"), old0)
	var once stdsync.Once
	a.onSendChunk(func(n string) {
		if n == name {
			once.Do(func() {
				f, err := os.OpenFile(name, os.O_WRONLY, 0)
				if err == nil {
					f.WriteAt([]byte("changed while being read"), 1<<20)
					f.Close()
				}
			})
		}
	})
	defer a.onSendChunk(nil)
	st := syncNow(t, a)
	if st.Errors == nil || !strings.Contains(strings.Join(st.Errors, " "), "changed") {
		t.Errorf("no error reported for the file that changed: %q", st.Errors)
	}
	if _, err := os.Stat(b.path(1, "default/100/INBOX/msg0000.wav")); err == nil {
		t.Error("a file that changed while read was applied")
	}
	if _, err := os.Stat(b.path(0, "other.conf")); err != nil {
		t.Error("the other file was not applied")
	}
	noTemps(t, b)
	a.onSendChunk(nil)
	syncNow(t, a)
	assertSame(t, a, b)
}

func TestMaxDeleteGuard(t *testing.T) {
	a, b := newPair(t, func(ca, _ *Config) { ca.MaxDeleteShare = 0.5 })
	for i := 0; i < 20; i++ {
		pbxtree.WriteFile(t, a.path(0, fmt.Sprintf("f%02d.conf", i)), []byte{byte(i)}, old0)
	}
	syncNow(t, a)
	for i := 0; i < 15; i++ {
		os.Remove(a.path(0, fmt.Sprintf("f%02d.conf", i)))
	}
	_, err := a.SyncNow(context.Background())
	if !errors.Is(err, ErrDeleteGuard) {
		t.Fatalf("run deleting 75%%: %v, want ErrDeleteGuard", err)
	}
	if len(a.eventsOf(EventDeleteGuard)) != 1 {
		t.Error("no delete-guard event")
	}
	for i := 0; i < 20; i++ {
		if _, err := os.Stat(b.path(0, fmt.Sprintf("f%02d.conf", i))); err != nil {
			t.Fatalf("replica lost a file despite the guard: %v", err)
		}
	}
	// Deleting less than the share goes through.
	for i := 0; i < 15; i++ {
		pbxtree.WriteFile(t, a.path(0, fmt.Sprintf("f%02d.conf", i)), []byte{byte(i)}, old0)
	}
	for i := 0; i < 8; i++ {
		os.Remove(a.path(0, fmt.Sprintf("f%02d.conf", i)))
	}
	syncNow(t, a)
	assertSame(t, a, b)
}

func TestTrashRetention(t *testing.T) {
	a, b := newPair(t, func(_, cb *Config) { cb.TrashRetention = time.Hour })
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano())
	b.runMu.Lock()
	b.now = func() time.Time { return time.Unix(0, now.Load()) }
	b.runMu.Unlock()
	pbxtree.WriteFile(t, a.path(0, "gone.conf"), []byte("keep me a while"), old0)
	syncNow(t, a)
	os.Remove(a.path(0, "gone.conf"))
	syncNow(t, a)
	trash := filepath.Join(b.trees[0], trashDirName)
	find := func() bool {
		found := false
		_ = filepath.WalkDir(trash, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == "gone.conf" {
				data, _ := os.ReadFile(p)
				found = string(data) == "keep me a while"
			}
			return nil
		})
		return found
	}
	if !find() {
		t.Fatal("deleted file not in the trash")
	}
	now.Add(int64(59 * time.Minute))
	syncNow(t, a)
	if !find() {
		t.Fatal("trash purged before the retention period")
	}
	now.Add(int64(2 * time.Minute))
	syncNow(t, a)
	if find() {
		t.Fatal("trash kept beyond the retention period")
	}
}

func TestVoicemailOrderAndSkips(t *testing.T) {
	a, b := newPair(t, nil)
	inbox := "default/100/INBOX"
	if err := os.MkdirAll(b.path(1, inbox), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(b.path(1, inbox)); err != nil {
		t.Fatal(err)
	}
	var mu stdsync.Mutex
	var order []string
	go func() {
		for ev := range w.Events {
			if ev.Has(fsnotify.Create) && !strings.HasPrefix(filepath.Base(ev.Name), tmpPrefix) {
				mu.Lock()
				order = append(order, filepath.Base(ev.Name))
				mu.Unlock()
			}
		}
	}()
	for i := 0; i < 3; i++ {
		// .txt written first on the source: the replica must still land it last.
		pbxtree.WriteFile(t, a.path(1, fmt.Sprintf("%s/msg%04d.txt", inbox, i)), []byte("[message]\n"), old0)
		pbxtree.WriteFile(t, a.path(1, fmt.Sprintf("%s/msg%04d.wav", inbox, i)), randBytes(i, 1000), old0)
		pbxtree.WriteFile(t, a.path(1, fmt.Sprintf("%s/msg%04d.gsm", inbox, i)), randBytes(i+9, 900), old0)
	}
	pbxtree.WriteFile(t, a.path(1, "default/100/tmp/recording.wav"), []byte("in flight"), old0)
	pbxtree.WriteFile(t, a.path(1, "default/100/Old/.lock"), nil, old0)
	pbxtree.WriteFile(t, a.path(1, "default/100/Old/msg0000.wav"), []byte("locked"), old0)
	syncNow(t, a)
	poll.Until(t, 5*time.Second, "nine steps recorded", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) >= 9 })
	mu.Lock()
	lastAudio, firstTxt := -1, len(order)
	for i, n := range order {
		if strings.HasSuffix(n, ".txt") {
			firstTxt = min(firstTxt, i)
		} else {
			lastAudio = i
		}
	}
	mu.Unlock()
	if firstTxt < lastAudio {
		t.Errorf("a .txt landed before audio: %v", order)
	}
	if _, err := os.Stat(b.path(1, "default/100/tmp")); err == nil {
		t.Error("tmp/ replicated")
	}
	if _, err := os.Stat(b.path(1, "default/100/Old/msg0000.wav")); err == nil {
		t.Error("a locked folder was replicated")
	}
	if st := a.Status().LastRun; st.Skipped == 0 {
		t.Error("locked folder not counted as skipped")
	}
	os.Remove(a.path(1, "default/100/Old/.lock"))
	syncNow(t, a)
	if data, err := os.ReadFile(b.path(1, "default/100/Old/msg0000.wav")); err != nil || string(data) != "locked" {
		t.Errorf("locked folder not retried after unlock: %q %v", data, err)
	}
	if _, err := os.Stat(b.path(1, "default/100/Old/.lock")); err == nil {
		t.Error(".lock replicated")
	}
}

func TestOwnershipModeMtime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	a, b := newPair(t, nil)
	p := a.path(1, "default/100/INBOX/msg0000.wav")
	pbxtree.WriteFile(t, p, []byte("audio"), old)
	if err := os.Chown(p, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(a.path(1, "default/100"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	syncNow(t, a)
	assertSame(t, a, b)
	// Attribute-only changes travel as such.
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	st := syncNow(t, a)
	assertSame(t, a, b)
	if st.Literal != 0 || st.Files != 1 {
		t.Errorf("chmod re-sent content: %+v", st)
	}
}

// TestReplicaFileChangedDuringRun: a file on the replica is edited while a run is in
// progress and the source pushes a new version of it in that run: the local edit is not
// overwritten; the next run treats it as a change made on both sides (.conflict copy).
func TestReplicaFileChangedDuringRun(t *testing.T) {
	a, b := newPair(t, nil)
	pbxtree.WriteFile(t, a.path(0, "a-big.bin"), randBytes(1, 600<<10), old0)
	pbxtree.WriteFile(t, a.path(0, "b.conf"), []byte("v1"), old0)
	syncNow(t, a)
	pbxtree.WriteFile(t, a.path(0, "a-big.bin"), randBytes(2, 600<<10), old0.Add(time.Hour))
	pbxtree.WriteFile(t, a.path(0, "b.conf"), []byte("v2 from the source"), old0.Add(time.Hour))
	var once stdsync.Once
	a.onSendChunk(func(string) {
		once.Do(func() {
			pbxtree.WriteFile(t, b.path(0, "b.conf"), []byte("edited on the replica meanwhile"), time.Time{})
		})
	})
	defer a.onSendChunk(nil)
	st := syncNow(t, a)
	a.onSendChunk(nil)
	if got, _ := os.ReadFile(b.path(0, "b.conf")); string(got) != "edited on the replica meanwhile" {
		t.Fatalf("replica's edit overwritten: %q", got)
	}
	if !strings.Contains(strings.Join(st.Errors, "\n"), "changed on the replica during the run") {
		t.Errorf("not reported: %q", st.Errors)
	}
	syncNow(t, a)
	assertSame(t, a, b)
	if got, _ := os.ReadFile(a.path(0, "b.conf.conflict")); string(got) != "edited on the replica meanwhile" {
		t.Errorf("conflict copy: %q", got)
	}
	if got, _ := os.ReadFile(a.path(0, "b.conf")); string(got) != "v2 from the source" {
		t.Errorf("source version: %q", got)
	}
}
