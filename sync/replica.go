package sync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	stdsync "sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// serve accepts connections from the peer. Only an authenticated peer gets past the TLS
// handshake; only a source talking to a replica gets past Hello.
func (n *Node) serve(ctx context.Context, ln net.Listener) {
	var wg stdsync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.log.Warn("sync accept", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		wg.Go(func() { n.handleConn(ctx, c) })
	}
}

// junk counts a connection refused before a run could start and logs it, a few times a
// minute at most.
func (n *Node) junk(remote net.Addr, why string, err error) {
	n.stMu.Lock()
	n.st.JunkConnections++
	total := n.st.JunkConnections
	ok, sup := n.junkLog.allow(n.now())
	n.stMu.Unlock()
	if ok {
		n.log.Warn("sync: refused a connection that is not the peer", "remote", remote, "why", why, "err", err,
			"suppressed", sup, "total", total)
	}
}

func (n *Node) handleConn(ctx context.Context, c net.Conn) {
	cnt := &countConn{Conn: c}
	tc := tls.Server(cnt, serverTLS(n.id, n.peerFP, func(got string) {
		n.stMu.Lock()
		ok, sup := n.wrongPeerEv.allow(n.now())
		n.stMu.Unlock()
		if ok {
			d := fmt.Sprintf("connection from %s presented certificate %q, pinned %s", c.RemoteAddr(), got, n.peerFP)
			if sup > 0 {
				d += fmt.Sprintf(" (and %d more such connections not reported)", sup)
			}
			n.emit(Event{Kind: EventWrongPeer, Detail: d})
		}
	}))
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.HandshakeContext(ctx); err != nil {
		n.junk(c.RemoteAddr(), "TLS handshake failed", err)
		c.Close()
		return
	}
	pc := newPeerConn(tc, cnt)
	defer pc.Close()
	var hello helloMsg
	if err := pc.expect(MsgHello, &hello); err != nil {
		n.junk(c.RemoteAddr(), "bad hello", err)
		return
	}
	_ = tc.SetDeadline(time.Time{})
	reason := ""
	switch {
	case hello.Version != protoVer:
		reason = fmt.Sprintf("protocol version %d, want %d", hello.Version, protoVer)
	case hello.Trees != n.trees:
		reason = "the nodes replicate different trees (check [sync] paths on both)"
	case n.Role() != RoleReplica:
		reason = fmt.Sprintf("this node is %s, not replica", n.Role())
	}
	ack := helloMsg{Version: protoVer, Role: n.Role(), Trees: n.trees, OK: reason == "", Reason: reason}
	if err := pc.send(MsgHelloAck, &ack); err != nil || pc.flush() != nil || reason != "" {
		if reason != "" {
			n.emit(Event{Kind: EventPeerRole, Detail: "refused source " + c.RemoteAddr().String() + ": " + reason})
		}
		return
	}
	// One session at a time; a new one replaces a stale one (peer rebooted).
	sctx, cancel := context.WithCancel(ctx)
	h := &sessionHandle{cancel: cancel, done: make(chan struct{})}
	defer close(h.done)
	defer cancel()
	if old := n.sess.Swap(h); old != nil {
		old.cancel()
		<-old.done
	}
	stop := context.AfterFunc(sctx, func() { tc.Close() })
	defer stop()
	n.setConnected(true)
	defer n.setConnected(false)
	for {
		t, p, err := pc.recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && sctx.Err() == nil {
				n.log.Info("sync session ended", "err", err)
			}
			return
		}
		if t != MsgBegin || len(p) != 0 {
			n.log.Warn("sync: unexpected frame outside a run", "type", t)
			return
		}
		if err := n.replicaRun(sctx, pc); err != nil {
			n.log.Warn("sync: replica run aborted", "err", err)
			return
		}
	}
}

// applier holds one run's state on the replica. File data is written by the session goroutine;
// fsync, attributes and the rename run in a small pool so that fsync latencies overlap.
// Barriers order the renames: content staged from the replica's own files (renumbering)
// lands before anything can overwrite those files, and a voicemail message's .txt lands after
// its audio.
type applier struct {
	n          *Node
	pc         *peerConn
	fs         *trees
	man        *manifest
	trashStamp string // this run's trash folder in each tree

	pool    chan func()
	creates chan createReq
	wg      stdsync.WaitGroup

	mu       stdsync.Mutex // guards the fields below (pool workers write them)
	failed   []pathErr
	fatal    error
	dirs     map[[2]string]bool
	applied  map[string]*record
	removed  map[string]bool
	sigs     map[Hash]*sigs
	deferred []deferredJob
	deletes  []deleteMsg
	overDirs []overDir
}

// Inode creation is the slowest step on some file systems and is serialised there anyway: one
// goroutine creates the temporary files of staged files as soon as their File message
// arrives, ahead of the workers that write, fsync and rename them.
type createReq struct {
	wp  string
	res chan tempFile
}

type tempFile struct {
	f   *os.File
	tmp string
	err error
}

// stageAhead is how many received files may wait for a worker (memory: at most
// stageAhead+applyWorkers+1 staged files of up to memStage bytes).
const stageAhead = 8

func (a *applier) precreate(wp string) chan tempFile {
	ch := make(chan tempFile, 1)
	a.creates <- createReq{wp: wp, res: ch}
	return ch
}

// dropTemp waits for a precreated temporary file nobody will use and removes it.
func (a *applier) dropTemp(ch chan tempFile, wp string) {
	if t := <-ch; t.err == nil {
		a.fs.discardTemp(t.f, t.tmp, wp)
	}
}

type deferredJob struct {
	txt bool
	fn  func()
}

func newApplier(n *Node, pc *peerConn) *applier {
	a := &applier{
		n: n, pc: pc, fs: n.fs, man: n.man,
		trashStamp: trashStamp(n.now()),
		pool:       make(chan func(), stageAhead),
		creates:    make(chan createReq, stageAhead+applyWorkers+1),
		dirs:       map[[2]string]bool{}, applied: map[string]*record{}, removed: map[string]bool{}, sigs: map[Hash]*sigs{},
	}
	go func() {
		for r := range a.creates {
			f, tmp, err := a.fs.createTemp(r.wp)
			r.res <- tempFile{f, tmp, err}
		}
	}()
	for range applyWorkers {
		go func() {
			for f := range a.pool {
				f()
				a.wg.Done()
			}
		}()
	}
	return a
}

func (a *applier) submit(f func()) {
	a.wg.Add(1)
	a.pool <- f
}

func (a *applier) stop() {
	a.wg.Wait()
	for _, j := range a.deferred {
		j.fn() // deferred jobs own temp files; run them in abort mode below
	}
	a.deferred = nil
	close(a.pool)
	close(a.creates)
}

func isFatalErr(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO)
}

func (a *applier) fail(p string, err error, retry bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if isFatalErr(err) && a.fatal == nil {
		a.fatal = err // names the path: file system errors carry it
	}
	a.failed = append(a.failed, pathErr{Path: p, Err: err.Error(), Retry: retry})
}

func (a *applier) isFatal() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fatal != nil
}

func (a *applier) touch(wp string) {
	i, rel := splitWirePath(wp)
	d := path.Dir(rel)
	if d == "." {
		d = ""
	}
	a.dirs[[2]string{fmt.Sprint(i), d}] = true
}

// done records an applied entry: it is now both current and the base.
func (a *applier) done(wp string, m *Meta, fi fs.FileInfo) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.touch(wp)
	if m.Kind == KindDir {
		i, rel := splitWirePath(wp)
		a.dirs[[2]string{fmt.Sprint(i), rel}] = true
	}
	c := *m
	b := *m
	r := &record{Cur: &c, Base: &b}
	var ok bool
	if fi != nil {
		// Not racy: this node wrote the file and knows its content; a replica has no other
		// writer.
		r.Dev, r.Ino, r.Ctime, ok = fileIdentity(fi)
	}
	if old := a.man.recs[wp]; !ok && old != nil {
		r.Dev, r.Ino, r.Ctime, r.Racy = old.Dev, old.Ino, old.Ctime, old.Racy
	}
	a.applied[wp] = r
}

// commitJob returns the job that makes a written temp file visible.
func (a *applier) commitJob(f *os.File, tmp, wp string, m Meta) func() {
	return func() {
		if a.isFatal() {
			a.fs.discardTemp(f, tmp, wp)
			a.fail(wp, errors.New("not applied: an earlier write failed"), false)
			return
		}
		if err := a.unchangedSinceScan(wp); err != nil {
			a.fs.discardTemp(f, tmp, wp)
			a.fail(wp, err, false)
			return
		}
		if a.isDir(wp) {
			// A folder becomes a file: its entries are deleted by this run's deletes, which
			// come last; the file replaces the emptied folder after them.
			a.mu.Lock()
			a.overDirs = append(a.overDirs, overDir{f: f, tmp: tmp, wp: wp, m: m})
			a.mu.Unlock()
			return
		}
		st, err := a.fs.commitTemp(f, tmp, wp, &m)
		if err != nil {
			a.fs.discardTemp(f, tmp, wp)
			a.fail(wp, err, false)
			return
		}
		f.Close()
		a.done(wp, &m, st)
	}
}

// overDir is a file waiting for the folder at its path to be emptied by the deletes.
type overDir struct {
	f   *os.File
	tmp string
	wp  string
	m   Meta
}

func (a *applier) isDir(wp string) bool {
	r, rel, err := a.fs.resolve(wp)
	if err != nil {
		return false
	}
	fi, err := r.Lstat(rel)
	return err == nil && fi.IsDir()
}

// replaceDirs puts the files waiting in overDirs in place of their (now empty) folders.
func (a *applier) replaceDirs() {
	for _, o := range a.overDirs {
		r, rel, _ := a.fs.resolve(o.wp)
		if a.isFatal() {
			a.fs.discardTemp(o.f, o.tmp, o.wp)
			a.fail(o.wp, errors.New("not applied: an earlier write failed"), false)
			continue
		}
		if err := r.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.fs.discardTemp(o.f, o.tmp, o.wp)
			a.fail(o.wp, fmt.Errorf("a folder is in the way and not empty: %w", err), false)
			continue
		}
		st, err := a.fs.commitTemp(o.f, o.tmp, o.wp, &o.m)
		if err != nil {
			a.fs.discardTemp(o.f, o.tmp, o.wp)
			a.fail(o.wp, err, false)
			continue
		}
		o.f.Close()
		a.done(o.wp, &o.m, st)
	}
	a.overDirs = nil
}

// errChangedHere: a file on the replica changed after this run's scan (someone wrote it while
// the run was in progress). It is not overwritten or deleted; the next run sees the change
// and the three-way rules decide.
var errChangedHere = errors.New("changed on the replica during the run: kept, next run decides")

// unchangedSinceScan checks that wp is still what the scan of this run recorded (absent, or
// the same inode, size and mtime; the ctime is left out because this run's own hard links
// move it), so that replacing or deleting it cannot destroy a change made meanwhile.
func (a *applier) unchangedSinceScan(wp string) error {
	_, rel, err := a.fs.resolve(wp)
	if err != nil {
		return err
	}
	i, _ := splitWirePath(wp)
	df, err := a.fs.dir(i, path.Dir(rel))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	rec := a.man.recs[wp]
	var st unix.Stat_t
	if err := unix.Fstatat(int(df.Fd()), path.Base(rel), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // absent: nothing to lose
		}
		return err
	}
	if rec == nil || rec.Cur == nil {
		return errChangedHere // created since the scan
	}
	ft := st.Mode & unix.S_IFMT
	switch {
	case ft == unix.S_IFDIR:
		return nil
	case rec.Cur.Kind == KindSymlink:
		// A link's lstat size is the length of its target, which the manifest does not
		// record: compare the target itself.
		if ft != unix.S_IFLNK || st.Ino != rec.Ino {
			return errChangedHere
		}
		buf := make([]byte, len(rec.Cur.Target)+1)
		k, err := unix.Readlinkat(int(df.Fd()), path.Base(rel), buf)
		if err != nil || string(buf[:k]) != rec.Cur.Target {
			return errChangedHere
		}
		return nil
	case rec.Cur.Kind != KindFile || ft != unix.S_IFREG:
		return errChangedHere
	}
	if st.Ino != rec.Ino || st.Size != rec.Cur.Size || st.Mtim.Nano() != rec.Cur.Mtime {
		return errChangedHere
	}
	return nil
}

func isTxt(wp string) bool { return isMsgFile(wp) && strings.HasSuffix(wp, ".txt") }

func (a *applier) barrier() {
	a.wg.Wait()
	var txts []func()
	for _, j := range a.deferred {
		if j.txt {
			txts = append(txts, j.fn)
		} else {
			a.submit(j.fn)
		}
	}
	a.deferred = nil
	a.wg.Wait()
	for _, f := range txts {
		a.submit(f)
	}
	a.wg.Wait()
}

// replicaState is the replica's answer to Begin: a digest of what it holds, whether anything
// changed here since the last sync, and what the run must leave alone.
func (n *Node) replicaState(res scanResult, ever bool) stateMsg {
	man := n.man
	st := stateMsg{Digest: man.digest(false, n.fs.owner), Clean: man.clean(n.fs.owner), Ever: ever, Owner: n.fs.owner}
	for _, r := range man.recs {
		if r.Cur != nil && r.Cur.Kind == KindFile {
			st.Count++
		}
	}
	for d := range res.Locked {
		st.Locked = append(st.Locked, d)
	}
	for p := range res.Unstable {
		st.Locked = append(st.Locked, p) // a file changing on the replica: leave it this run
	}
	slices.Sort(st.Locked)
	st.Unreadable = slices.Sorted(maps.Keys(res.Unreadable))
	for _, e := range res.Errors {
		n.log.Warn("sync: replica scan", "err", e)
	}
	return st
}

// replicaFrame handles one frame of a run before its Commit.
func (n *Node) replicaFrame(pc *peerConn, a *applier, t MsgType, p []byte) error {
	switch t {
	case MsgManifestReq:
		return n.sendManifest(pc)
	case MsgSigReq:
		var m sigReqMsg
		if err := m.UnmarshalBinary(p); err != nil {
			return err
		}
		return n.sendSigs(pc, &m)
	case MsgPull:
		var m pathMsg
		if err := m.UnmarshalBinary(p); err != nil {
			return err
		}
		return n.sendPulled(pc, m.Path)
	case MsgFile:
		var m fileMsg
		if err := m.UnmarshalBinary(p); err != nil {
			return err
		}
		return a.file(&m)
	case MsgDelete:
		var m deleteMsg
		if err := m.UnmarshalBinary(p); err != nil {
			return err
		}
		a.deletes = append(a.deletes, m)
		return nil
	case MsgBarrier:
		a.barrier()
		return nil
	default:
		return fmt.Errorf("%w: %d during a run", ErrFrameType, t)
	}
}

// replicaCommit makes the run durable and answers with what failed.
func (n *Node) replicaCommit(pc *peerConn, a *applier) error {
	r := a.commit()
	if err := pc.send(MsgResult, &r); err != nil {
		return err
	}
	if err := pc.flush(); err != nil {
		return err
	}
	// Walk again once this run's own changes have been seen by the watcher (the source is
	// no longer waiting): the next run can then skip the walk if nothing else touches the
	// trees, and a change made by someone else during this run is found now.
	if _, err := n.trackedScan(n.now(), false); err != nil {
		n.log.Warn("sync: scan after the run", "err", err)
	}
	return nil
}

// replicaRun answers one run of the source: Begin has been read.
func (n *Node) replicaRun(ctx context.Context, pc *peerConn) error {
	n.runMu.Lock()
	defer n.runMu.Unlock()
	if n.Role() != RoleReplica || n.man == nil {
		_ = pc.send(MsgError, &textMsg{Text: "not replica"})
		_ = pc.flush()
		return ErrNotSource
	}
	defer n.fs.releaseDirs()
	man := n.man
	if man.peer != "" && man.peer != n.peerFP {
		man.setPeer(n.peerFP)
	}
	ever := man.peer == n.peerFP
	now := n.now()
	if err := n.fs.purgeTrash(n.cfg.StateDir, now, n.retain); err != nil {
		n.log.Warn("sync: trash purge", "err", err)
	}
	res, err := n.trackedScan(now, false)
	if err != nil {
		return err
	}
	st := n.replicaState(res, ever)
	n.fs.createNs.Store(0)
	n.fs.syncNs.Store(0)
	n.fs.commitNs.Store(0)
	defer func() {
		n.log.Debug("sync: replica run", "create", time.Duration(n.fs.createNs.Load()),
			"fsync", time.Duration(n.fs.syncNs.Load()), "commit", time.Duration(n.fs.commitNs.Load()))
	}()
	if err := pc.send(MsgState, &st); err != nil {
		return err
	}
	if err := pc.flush(); err != nil {
		return err
	}
	a := newApplier(n, pc)
	committed := false
	defer func() {
		if !committed {
			a.abort()
		}
	}()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t, p, err := pc.recv()
		if err != nil {
			return err
		}
		if t == MsgCommit {
			committed = true
			return n.replicaCommit(pc, a)
		}
		if err := n.replicaFrame(pc, a, t, p); err != nil {
			return err
		}
	}
}

// abort ends a run that did not reach Commit: staged temp files are removed; files already
// renamed into place are complete and are recorded.
func (a *applier) abort() {
	a.mu.Lock()
	a.fatal = errors.New("run aborted")
	a.mu.Unlock()
	a.wg.Wait()
	a.replaceDirs() // in abort mode: discards
	a.stop()
	a.fs.cleanTrash(a.trashStamp)
	for p, r := range a.applied {
		a.man.recs[p] = r
		a.man.markDirty(p)
	}
	_ = a.man.save(a.sigs)
}

func (a *applier) commit() resultMsg {
	a.barrier()
	var r resultMsg
	deleted := !a.isFatal()
	if deleted {
		a.applyDeletes()
	} else {
		for _, d := range a.deletes {
			a.fail(d.Path, errors.New("not deleted: the run failed"), false)
		}
	}
	a.wg.Wait()
	a.replaceDirs()
	a.stop()
	a.fs.cleanTrash(a.trashStamp)
	for d := range a.dirs {
		var ti int
		fmt.Sscan(d[0], &ti)
		if err := a.fs.fsyncDir(ti, d[1]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			wp := "" // the tree itself: a failure not about one entry (the error names it)
			if d[1] != "" {
				wp = wirePath(ti, d[1])
			}
			a.fail(wp, err, false)
		}
	}
	for p, rec := range a.applied {
		a.man.recs[p] = rec
		a.man.markDirty(p)
	}
	// Folders whose entries changed have a new ctime: record it now, so that the next scan
	// finds them unchanged and the next run with nothing to do writes nothing.
	for d := range a.dirs {
		var ti int
		fmt.Sscan(d[0], &ti)
		if d[1] == "" {
			continue
		}
		wp := wirePath(ti, d[1])
		rec := a.man.recs[wp]
		if rec == nil || rec.Cur == nil {
			continue
		}
		if df, err := a.fs.dir(ti, d[1]); err == nil {
			var st unix.Stat_t
			if unix.Fstat(int(df.Fd()), &st) == nil {
				rec.Dev, rec.Ino, rec.Ctime = statDev(&st), st.Ino, st.Ctim.Nano()
			}
		}
	}
	for p := range a.removed {
		if rec := a.man.recs[p]; rec != nil {
			rec.Cur, rec.Base = nil, nil
			a.man.markDirty(p)
		}
	}
	if a.fatal == nil {
		a.man.peer = a.n.peerFP
	}
	if err := a.man.save(a.sigs); err != nil {
		// The files are in place, but the replica could not record them (state_dir full or
		// read-only): the run fails with that error; the records are saved by a later run.
		a.fail("", fmt.Errorf("record the run in %s: %w", a.n.cfg.StateDir, err), false)
		if a.fatal == nil {
			a.fatal = a.failed[len(a.failed)-1].asError()
		}
	}
	r.Failed = a.failed
	if a.fatal != nil {
		r.Fatal = a.fatal.Error()
		if !deleted {
			r.Fatal += " (nothing was deleted)"
		}
	}
	return r
}

func (a *applier) applyDeletes() {
	var dirs []deleteMsg
	for _, d := range a.deletes {
		if d.Kind == KindDir {
			dirs = append(dirs, d)
			continue
		}
		if a.fs.locked(d.Path) {
			a.fail(d.Path, errors.New("folder locked: retried next run"), false)
			continue
		}
		r, rel, err := a.fs.resolve(d.Path)
		if err != nil {
			a.fail(d.Path, err, false)
			continue
		}
		if err := a.unchangedSinceScan(d.Path); err != nil {
			a.fail(d.Path, err, false)
			continue
		}
		if d.Trash {
			err = a.fs.toTrash(d.Path, a.trashStamp)
		} else {
			err = r.Remove(rel)
			if errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
		if err != nil {
			a.fail(d.Path, err, false)
			continue
		}
		a.mu.Lock()
		a.removed[d.Path] = true
		a.touch(d.Path)
		a.mu.Unlock()
	}
	slices.SortFunc(dirs, func(x, y deleteMsg) int { return strings.Compare(y.Path, x.Path) })
	for _, d := range dirs {
		r, rel, err := a.fs.resolve(d.Path)
		if err != nil {
			a.fail(d.Path, err, false)
			continue
		}
		if err := r.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.fail(d.Path, err, false)
			continue
		}
		a.mu.Lock()
		a.removed[d.Path] = true
		a.touch(d.Path)
		a.mu.Unlock()
	}
}

// curOf returns the replica's current entry at wp, if the scan of this run saw it.
func (a *applier) curOf(wp string) *Meta {
	if r := a.man.recs[wp]; r != nil {
		return r.Cur
	}
	return nil
}

// file applies one File message (reading its Data frames when it has any).
func (a *applier) file(m *fileMsg) error {
	hasData := m.Method == methodFull || m.Method == methodDelta
	if a.isFatal() || a.fs.locked(m.Path) {
		if a.isFatal() {
			a.fail(m.Path, errors.New("not applied: an earlier write failed"), false)
		} else {
			a.fail(m.Path, errors.New("folder locked: retried next run"), false)
		}
		if hasData {
			_, _, err := recvData(a.pc, io.Discard, nil)
			return err
		}
		return nil
	}
	r, rel, err := a.fs.resolve(m.Path)
	if err != nil {
		return err
	}
	switch m.Method {
	case methodMkdir:
		a.mkdir(m, r, rel)
	case methodSymlink:
		a.symlink(m, r, rel)
	case methodBase:
		if c := a.curOf(m.Path); !sameContent(c, &m.Meta) {
			a.fail(m.Path, errors.New("content changed on the replica"), false)
			return nil
		}
		a.done(m.Path, &m.Meta, nil)
	case methodMeta:
		a.setAttrs(m, r, rel)
	case methodLocal:
		a.local(m)
	case methodFull:
		return a.full(m)
	case methodDelta:
		return a.delta(m)
	}
	return nil
}

// mkdir makes a folder (a file in its way goes to the trash) with the source's attributes.
func (a *applier) mkdir(m *fileMsg, r *os.Root, rel string) {
	if fi, err := r.Lstat(rel); err == nil && !fi.IsDir() {
		if err := a.fs.toTrash(m.Path, a.trashStamp); err != nil {
			a.fail(m.Path, err, false)
			return
		}
	}
	if err := r.MkdirAll(rel, 0o755); err != nil {
		a.fail(m.Path, err, false)
		return
	}
	if a.fs.owner {
		_ = r.Lchown(rel, int(m.Meta.UID), int(m.Meta.GID))
	}
	if err := r.Chmod(rel, modeOf(&m.Meta)); err != nil {
		a.fail(m.Path, err, false)
		return
	}
	a.done(m.Path, &m.Meta, nil)
}

// symlink makes a symlink whose target stays inside the replicated trees (temp, rename).
func (a *applier) symlink(m *fileMsg, r *os.Root, rel string) {
	i, _ := splitWirePath(m.Path)
	if !a.man.linkInside(filepath.Dir(filepath.Join(a.fs.paths[i], rel)), m.Meta.Target) {
		a.fail(m.Path, fmt.Errorf("%w: symlink target %q leaves the replicated trees", ErrBadPath, m.Meta.Target), false)
		return
	}
	if d := path.Dir(rel); d != "." {
		_ = r.MkdirAll(d, 0o755)
	}
	tmp := tmpName(rel)
	if err := r.Symlink(m.Meta.Target, tmp); err != nil {
		a.fail(m.Path, err, false)
		return
	}
	if a.fs.owner {
		_ = r.Lchown(tmp, int(m.Meta.UID), int(m.Meta.GID))
	}
	if err := r.Rename(tmp, rel); err != nil {
		_ = r.Remove(tmp)
		a.fail(m.Path, err, false)
		return
	}
	fi, _ := r.Lstat(rel) // the new link's inode, for the next run's check
	a.done(m.Path, &m.Meta, fi)
}

// setAttrs gives an entry whose content is already the source's the source's owner, mode and
// mtime.
func (a *applier) setAttrs(m *fileMsg, r *os.Root, rel string) {
	if c := a.curOf(m.Path); !sameContent(c, &m.Meta) {
		a.fail(m.Path, errors.New("content changed on the replica"), false)
		return
	}
	if a.fs.owner {
		if err := r.Lchown(rel, int(m.Meta.UID), int(m.Meta.GID)); err != nil {
			a.fail(m.Path, err, false)
			return
		}
	}
	if m.Meta.Kind != KindSymlink {
		if err := r.Chmod(rel, modeOf(&m.Meta)); err != nil {
			a.fail(m.Path, err, false)
			return
		}
	}
	if m.Meta.Kind == KindFile {
		mt := time.Unix(0, m.Meta.Mtime)
		if err := r.Chtimes(rel, mt, mt); err != nil {
			a.fail(m.Path, err, false)
			return
		}
	}
	fi, err := r.Lstat(rel)
	if err != nil {
		a.fail(m.Path, err, false)
		return
	}
	a.done(m.Path, &m.Meta, fi)
}

// local stages a file from content the replica already holds (renamed or renumbered
// voicemail, copied config). The rename waits for the next barrier.
func (a *applier) local(m *fileMsg) {
	c := a.curOf(m.Src)
	if c == nil || c.Kind != KindFile || c.Hash != m.Meta.Hash {
		a.fail(m.Path, errors.New("local source changed on the replica"), true)
		return
	}
	sr, srel, err := a.fs.resolve(m.Src)
	if err != nil {
		a.fail(m.Path, err, true)
		return
	}
	dr, rel, _ := a.fs.resolve(m.Path)
	var f *os.File
	var tmp string
	if m.Move && sr == dr {
		if d := path.Dir(rel); d != "." {
			_ = dr.MkdirAll(d, 0o755)
		}
		tmp = tmpName(rel)
		if err = dr.Link(srel, tmp); err == nil {
			f, err = dr.OpenFile(tmp, os.O_RDWR, 0)
			if err != nil {
				_ = dr.Remove(tmp)
			}
		}
	}
	if f == nil {
		var in *os.File
		if in, err = sr.Open(srel); err == nil {
			f, tmp, err = a.fs.createTemp(m.Path)
			if err == nil {
				sw := &sparseWriter{f: f}
				if _, err = io.Copy(sw, in); err == nil {
					err = sw.finish()
				}
				if err != nil {
					a.fs.discardTemp(f, tmp, m.Path)
					f = nil
				}
			}
			in.Close()
		}
	}
	if err != nil || f == nil {
		if err == nil {
			err = errors.New("local copy failed")
		}
		a.fail(m.Path, err, !isFatalErr(err))
		return
	}
	job := a.commitJob(f, tmp, m.Path, m.Meta)
	a.deferred = append(a.deferred, deferredJob{txt: isTxt(m.Path), fn: job})
}

// memStage: files up to this size are received into memory and written, hashed, fsynced and
// renamed by the pool, so that the slow parts (inode creation, fsync) overlap with receiving
// the next files; larger files are streamed to their temporary file as they arrive.
const memStage = 4 << 20

// stageBufs recycles the staging buffers (at most one per worker plus one being received).
var stageBufs = stdsync.Pool{New: func() any { b := make([]byte, 0, 2<<20); return &b }}

func (a *applier) full(m *fileMsg) error {
	if m.Meta.Size <= memStage {
		fut := a.precreate(m.Path)
		bp := stageBufs.Get().(*[]byte)
		buf := &limitedBuffer{max: memStage, b: (*bp)[:0]}
		end, werr, err := recvData(a.pc, buf, nil)
		release := func() {
			*bp = buf.b[:0]
			stageBufs.Put(bp)
		}
		if err != nil {
			release()
			a.dropTemp(fut, m.Path)
			return err
		}
		if werr != nil || end == nil {
			release()
			a.dropTemp(fut, m.Path)
			if werr != nil {
				a.fail(m.Path, werr, true)
			} else {
				a.fail(m.Path, errors.New("changed on the source while sent: next run"), false)
			}
			return nil
		}
		data, meta, want := buf.b, m.Meta, end.Hash
		a.submit(func() {
			defer release()
			if a.isFatal() {
				a.dropTemp(fut, m.Path)
				a.fail(m.Path, errors.New("not applied: an earlier write failed"), false)
				return
			}
			got := hashBytes(data)
			if got != want || (meta.Hash != Hash{} && got != meta.Hash) {
				a.dropTemp(fut, m.Path)
				a.fail(m.Path, errors.New("content hash mismatch"), true)
				return
			}
			meta.Hash = got
			t := <-fut
			if t.err != nil {
				a.fail(m.Path, t.err, false)
				return
			}
			if err := writeSparse(t.f, data); err != nil {
				a.fs.discardTemp(t.f, t.tmp, m.Path)
				a.fail(m.Path, err, false)
				return
			}
			a.commitJob(t.f, t.tmp, m.Path, meta)()
		})
		return nil
	}
	f, tmp, err := a.fs.createTemp(m.Path)
	if err != nil {
		a.fail(m.Path, err, false)
		_, _, err := recvData(a.pc, io.Discard, nil)
		return err
	}
	h := newContentHasher(0)
	sw := &sparseWriter{f: f}
	end, werr, err := recvData(a.pc, sw, h)
	if err != nil {
		a.fs.discardTemp(f, tmp, m.Path)
		return err
	}
	if werr == nil {
		werr = sw.finish()
	}
	if werr != nil || end == nil {
		a.fs.discardTemp(f, tmp, m.Path)
		if werr != nil {
			a.fail(m.Path, werr, false)
		} else {
			a.fail(m.Path, errors.New("changed on the source while sent: next run"), false)
		}
		return nil
	}
	got, _ := h.finish()
	if got != end.Hash || (m.Meta.Hash != Hash{} && got != m.Meta.Hash) {
		a.fs.discardTemp(f, tmp, m.Path)
		a.fail(m.Path, errors.New("content hash mismatch"), true)
		return nil
	}
	meta := m.Meta
	meta.Hash = got
	a.submit(a.commitJob(f, tmp, m.Path, meta))
	return nil
}

type limitedBuffer struct {
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b)+len(p) > l.max {
		return 0, fmt.Errorf("%w: delta larger than %d bytes", ErrBadValue, l.max)
	}
	l.b = append(l.b, p...)
	return len(p), nil
}

func (a *applier) delta(m *fileMsg) error {
	buf := &limitedBuffer{max: maxDelta + maxDelta/8}
	end, werr, err := recvData(a.pc, buf, nil)
	if err != nil {
		return err
	}
	if werr != nil || end == nil {
		if werr != nil {
			a.fail(m.Path, werr, true)
		} else {
			a.fail(m.Path, errors.New("changed on the source while sent: next run"), false)
		}
		return nil
	}
	c := a.curOf(m.Path)
	if c == nil || c.Kind != KindFile || c.Hash != m.Basis {
		a.fail(m.Path, errors.New("delta basis changed on the replica"), true)
		return nil
	}
	// Rebuilding, creating the file and fsync happen in the pool, overlapping with the next
	// files on the wire.
	delta, meta, endHash := buf.b, m.Meta, end.Hash
	a.submit(func() {
		if a.isFatal() {
			a.fail(m.Path, errors.New("not applied: an earlier write failed"), false)
			return
		}
		r, rel, _ := a.fs.resolve(m.Path)
		basis, err := r.Open(rel)
		if err != nil {
			a.fail(m.Path, err, true)
			return
		}
		defer basis.Close()
		bfi, err := basis.Stat()
		if err != nil {
			a.fail(m.Path, err, true)
			return
		}
		f, tmp, err := a.fs.createTemp(m.Path)
		if err != nil {
			a.fail(m.Path, err, false)
			return
		}
		h := newContentHasher(0)
		sw := &sparseWriter{f: f}
		err = applyDelta(io.MultiWriter(sw, h), basis, bfi.Size(), m.BlockSize, delta)
		if err == nil {
			err = sw.finish()
		}
		if err != nil {
			a.fs.discardTemp(f, tmp, m.Path)
			a.fail(m.Path, err, !isFatalErr(err))
			return
		}
		if got, _ := h.finish(); got != meta.Hash || got != endHash {
			a.fs.discardTemp(f, tmp, m.Path)
			a.fail(m.Path, errors.New("delta did not reproduce the content"), true)
			return
		}
		a.commitJob(f, tmp, m.Path, meta)()
	})
	return nil
}

// sendManifest sends this node's manifest (current and base of every entry) in chunks.
func (n *Node) sendManifest(pc *peerConn) error {
	keys := make([]string, 0, len(n.man.recs))
	for k := range n.man.recs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var m manifestMsg
	size := 0
	flushChunk := func(last bool) error {
		m.Last = last
		b, _ := m.MarshalBinary()
		m.Entries = m.Entries[:0]
		size = 0
		return pc.sendRaw(MsgManifest, pc.zenc.EncodeAll(b, nil))
	}
	for _, k := range keys {
		r := n.man.recs[k]
		if r.Cur == nil && r.Base == nil {
			continue
		}
		m.Entries = append(m.Entries, viewEntry{Path: k, Cur: r.Cur, Base: r.Base})
		size += len(k) + 200
		if size > maxFrame/2 {
			if err := flushChunk(false); err != nil {
				return err
			}
		}
	}
	if err := flushChunk(true); err != nil {
		return err
	}
	return pc.flush()
}

// sendPulled sends one of this node's files to the peer (failback: the source takes what the
// replica recorded while it was Master).
func (n *Node) sendPulled(pc *peerConn, wp string) error {
	var cur *Meta
	if r := n.man.recs[wp]; r != nil {
		cur = r.Cur
	}
	if cur == nil || cur.Kind != KindFile {
		return pc.send(MsgFileAbort, &textMsg{Text: "not a file here"})
	}
	r, rel, err := n.fs.resolve(wp)
	if err != nil {
		return pc.send(MsgFileAbort, &textMsg{Text: err.Error()})
	}
	f, err := r.Open(rel)
	if err != nil {
		return pc.send(MsgFileAbort, &textMsg{Text: err.Error()})
	}
	defer f.Close()
	if err := pc.send(MsgFile, &fileMsg{Path: wp, Meta: *cur, Method: methodFull}); err != nil {
		return err
	}
	_, _, _, err = sendWhole(pc, f, cur, true, n.chunkHook())
	if err != nil {
		return err
	}
	return pc.flush()
}

// applyWorkers is the number of goroutines that create, fsync and rename files on the replica.
// Two overlap fsync with receiving; more only contend for the file system's journal (measured
// with 1, 2 and 4 on the benchmark machine).
const applyWorkers = 2

// sendSigs answers a SigReq: the block sums of this node's current version of each path,
// computed now, when it still is the requested version.
func (n *Node) sendSigs(pc *peerConn, m *sigReqMsg) error {
	for _, it := range m.Items {
		out := sigsMsg{Path: it.Path}
		if rec := n.man.recs[it.Path]; rec != nil && rec.Cur != nil && rec.Cur.Kind == KindFile && rec.Cur.Hash == it.Basis {
			if r, rel, err := n.fs.resolve(it.Path); err == nil {
				if f, err := r.Open(rel); err == nil {
					c := newContentHasher(rec.Cur.Size)
					if _, err := io.Copy(c, f); err == nil {
						if h, sg := c.finish(); h == it.Basis && sg != nil {
							out.Sums, _ = sg.MarshalBinary()
						}
					}
					f.Close()
				}
			}
		}
		if err := pc.send(MsgSigs, &out); err != nil {
			return err
		}
	}
	return pc.flush()
}
