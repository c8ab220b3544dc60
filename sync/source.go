package sync

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The source drives every run:
//
//  1. scan its trees (a stat walk; only files whose stat moved are rehashed);
//  2. Begin: the replica scans too and answers with a digest of what it holds. When the replica
//     is clean (nothing changed there since the last sync) and the digest equals the digest of
//     the source's recorded bases, the replica holds exactly what the source last sent, and the
//     plan is computed locally; otherwise the replica sends its manifest;
//  3. three-way decision per path between the source's current entry, the replica's current
//     entry and the replica's base (what it last received): a path the replica changed since
//     the last sync (it was Master, or split brain) is taken back before anything is pushed:
//     adopted when only the replica changed it, merged under a new message number for
//     voicemail, kept as a .conflict copy for other files;
//  4. push: folders, then content the replica already has (copied or renamed there), a
//     barrier, new and changed files (delta against the replica's version when the source
//     knows its block sums, whole otherwise), a barrier, voicemail .txt files, deletes;
//  5. Commit: the replica makes it durable and reports failures; the source records the new
//     bases for everything that was applied.

var msgRe = regexp.MustCompile(`^msg[0-9]{4}\.[^/]+$`)

// isMsgFile reports whether wp is a voicemail message file (msgNNNN.<ext>).
func isMsgFile(wp string) bool { return msgRe.MatchString(path.Base(wp)) }

var audioExt = map[string]bool{
	".wav": true, ".WAV": true, ".wav49": true, ".gsm": true, ".g729": true, ".g722": true, ".ulaw": true,
	".alaw": true, ".sln": true, ".sln16": true, ".mp3": true, ".ogg": true, ".opus": true, ".g723": true,
}

func compressible(wp string) bool { return !audioExt[path.Ext(wp)] }

func (n *Node) dial(ctx context.Context) (*peerConn, error) {
	var c net.Conn
	var err error
	if n.cfg.Dial != nil {
		c, err = n.cfg.Dial(ctx)
	} else {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err = d.DialContext(ctx, "tcp", n.cfg.Peer)
	}
	if err != nil {
		return nil, fmt.Errorf("sync: dial peer %s: %w", n.cfg.Peer, err)
	}
	cnt := &countConn{Conn: c}
	tc := tls.Client(cnt, clientTLS(n.id, n.peerFP, func(got string) {
		n.emit(Event{Kind: EventWrongPeer, Detail: fmt.Sprintf("peer %s presented certificate %q, pinned %s", n.cfg.Peer, got, n.peerFP)})
	}))
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("sync: TLS with %s: %w", n.cfg.Peer, err)
	}
	pc := newPeerConn(tc, cnt)
	if err := pc.send(MsgHello, &helloMsg{Version: protoVer, Role: RoleSource, Trees: n.trees}); err != nil {
		pc.Close()
		return nil, err
	}
	var ack helloMsg
	if err := pc.expect(MsgHelloAck, &ack); err != nil {
		pc.Close()
		return nil, fmt.Errorf("sync: hello: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	if !ack.OK {
		pc.Close()
		n.emit(Event{Kind: EventPeerRole, Detail: "peer refused: " + ack.Reason})
		return nil, fmt.Errorf("%w: %s", ErrPeer, ack.Reason)
	}
	n.setConnected(true)
	n.emit(Event{Kind: EventPeerConnected, Detail: n.cfg.Peer})
	return pc, nil
}

// runOnce performs one run; runMu is held.
func (n *Node) runOnce(ctx context.Context) (st RunStats, err error) {
	st = RunStats{Started: n.now()}
	defer n.fs.releaseDirs()
	wall := time.Now()
	defer func() { st.Duration = time.Since(wall) }()
	var pc *peerConn
	var rx0, tx0 int64
	for attempt := 0; attempt < 2; attempt++ {
		reused := n.conn != nil
		if n.conn == nil {
			c, err := n.dial(ctx)
			if err != nil {
				st.Errors = append(st.Errors, err.Error())
				return st, err
			}
			n.conn = c
		}
		pc = n.conn
		rx0, tx0 = pc.cnt.rx.Load(), pc.cnt.tx.Load()
		stop := context.AfterFunc(ctx, func() { _ = pc.nc.SetDeadline(time.Unix(1, 0)) })
		err = nil
		for round := 0; round < 2; round++ {
			var retry bool
			retry, err = n.sourceRun(ctx, pc, &st, round > 0)
			if err != nil || !retry {
				break
			}
		}
		stop()
		var perr *protocolError
		if err == nil || errors.As(err, &perr) || !reused || ctx.Err() != nil {
			break
		}
		// The long-lived connection went stale (the peer restarted or changed role):
		// redial once; a run is safe to repeat.
		pc.Close()
		n.conn = nil
		st = RunStats{Started: st.Started}
	}
	if err == nil && n.now().Sub(n.lastPrune) > time.Hour {
		n.lastPrune = n.now()
		if perr := n.man.pruneSigs(); perr != nil {
			n.log.Warn("sync: prune block sums", "err", perr)
		}
	}
	st.BytesSent = pc.cnt.tx.Load() - tx0
	st.BytesRecv = pc.cnt.rx.Load() - rx0
	if err != nil {
		st.Errors = append(st.Errors, err.Error())
		var perr *protocolError
		if !errors.As(err, &perr) {
			pc.Close()
			n.conn = nil
			n.setConnected(false)
		}
	}
	return st, err
}

// fullScanEvery bounds how long the source trusts its watcher instead of walking the trees.
const fullScanEvery = 10 * time.Minute

// trackedScan walks the trees, unless the watcher proves that nothing changed since the last
// walk: it was healthy and caught up when that walk started and has seen no event since, no
// entry is racy or pending, and the last walk is recent. runMu is held. The source defers
// hashing new files (deferNew); the replica does not.
func (n *Node) trackedScan(now time.Time, deferNew bool) (scanResult, error) {
	man := n.man
	if n.watchOK.Load() && n.lastScanOK && now.Sub(n.lastFullScan) < fullScanEvery &&
		!man.anyRacy() && n.watcherCaughtUp() && n.watchOK.Load() && n.watchGen.Load() == n.lastScanGen {
		n.log.Debug("sync: no change seen by the watcher since the last scan: walk skipped")
		res := newScanResult()
		res.Locked, res.Special, res.SpecialPaths = man.lastLocked, man.lastSpecial, man.lastSpecialPaths
		return res, nil
	}
	healthy := n.watchOK.Load() && n.watcherCaughtUp()
	gen := n.watchGen.Load()
	res := man.scan(now, deferNew)
	n.lastScanGen, n.lastScanOK, n.lastFullScan = gen, healthy && n.watchOK.Load(), now
	if len(res.Unstable) > 0 || len(res.Unreadable) > 0 {
		n.lastScanOK = false // rescan (and report) them next time
	}
	return res, man.save(res.Sigs)
}

// protocolError marks a run that failed with the connection still in step (guard, disk full
// on the replica): the connection is kept.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

// sourceRun runs one Begin..Commit exchange. retry reports that some deltas failed and a
// second exchange should send those files whole.
func (n *Node) sourceRun(ctx context.Context, pc *peerConn, st *RunStats, second bool) (retry bool, err error) {
	man := n.man
	man.setPeer(n.peerFP)
	now := n.now()
	if err := n.fs.purgeTrash(n.cfg.StateDir, now, n.retain); err != nil {
		n.log.Warn("sync: trash purge", "err", err)
	}
	t0 := time.Now()
	res, rs, err := n.begin(pc, now, st)
	if err != nil {
		return false, err
	}
	unreadable := n.noteUnreadable(st, res.Unreadable, rs.Unreadable)
	owner := rs.Owner && n.fs.owner
	fast := rs.Clean && rs.Ever && rs.Digest == man.digest(true, owner)
	if fast && man.clean(owner) && len(res.Unstable) == 0 && len(res.Locked) == 0 && len(rs.Locked) == 0 && len(unreadable) == 0 {
		// The replica holds exactly the last-synced state and nothing changed here.
		r, err := n.emptyCommit(pc)
		if err == nil && (len(r.Failed) > 0 || r.Fatal != "") {
			err = fmt.Errorf("sync: empty commit failed: %v %s", r.Failed, r.Fatal)
		}
		return false, err
	}
	bases := man.baseSet()
	view, err := n.replicaView(pc, fast, bases, rs.Ever, &res, st)
	if err != nil {
		return false, err
	}
	locked := maps.Clone(res.Locked)
	if locked == nil {
		locked = map[string]bool{}
	}
	for _, d := range rs.Locked {
		locked[d] = true
	}
	pl := &planInput{sCur: man.curSet(), sBase: bases, view: view, rEver: rs.Ever, owner: owner,
		skip: skipRule(res.Unstable, locked, unreadable), resolved: map[string]bool{}, noDelta: n.noDelta}
	p := makePlan(pl)
	if p.failbackWork() && !second {
		if p, err = n.failbackAndReplan(ctx, pc, p, pl, &res, unreadable, st); err != nil {
			return false, err
		}
	}
	st.Skipped += p.skipped
	if err := guardDeletes(p, rs.Count, n.share); err != nil {
		n.emit(Event{Kind: EventDeleteGuard, Detail: err.Error(), Err: err})
		// End the run cleanly: an empty commit.
		if _, e := n.emptyCommit(pc); e != nil {
			return false, e
		}
		return false, &protocolError{err}
	}
	useLocalSigs(p, view, man.loadSigs)
	n.log.Debug("sync: planned", "full", st.Full, "took", time.Since(t0))
	defer func() { n.log.Debug("sync: pushed", "took", time.Since(t0)) }()
	return n.push(pc, p, st)
}

// begin starts a run: the replica scans while this node does, then answers with its state.
func (n *Node) begin(pc *peerConn, now time.Time, st *RunStats) (scanResult, stateMsg, error) {
	var rs stateMsg
	if err := pc.sendRaw(MsgBegin, nil); err != nil {
		return scanResult{}, rs, err
	}
	if err := pc.flush(); err != nil {
		return scanResult{}, rs, err
	}
	t0 := time.Now()
	res, err := n.trackedScan(now, true)
	if err != nil {
		return res, rs, err
	}
	st.Errors = append(st.Errors, res.Errors...)
	st.Special, st.SpecialPaths = res.Special, res.SpecialPaths
	n.log.Debug("sync: scanned", "hashed", res.Hashed, "took", time.Since(t0))
	if err := pc.expect(MsgState, &rs); err != nil {
		return res, rs, fmt.Errorf("sync: begin: %w", err)
	}
	return res, rs, nil
}

// emptyCommit ends a run that sends nothing.
func (n *Node) emptyCommit(pc *peerConn) (resultMsg, error) {
	var r resultMsg
	if err := pc.sendRaw(MsgCommit, nil); err != nil {
		return r, err
	}
	err := pc.expect(MsgResult, &r)
	return r, err
}

// replicaView returns what the replica holds: the recorded bases when its digest proves it
// holds exactly those (fast), its manifest otherwise (then every pending hash is computed
// here: the three-way comparison needs them).
func (n *Node) replicaView(pc *peerConn, fast bool, bases map[string]*Meta, ever bool, res *scanResult, st *RunStats) (map[string]viewEntry, error) {
	if fast {
		view := map[string]viewEntry{}
		for p, b := range bases {
			view[p] = viewEntry{Path: p, Cur: b, Base: b}
		}
		return view, nil
	}
	st.Full = true
	view, err := n.fetchManifest(pc)
	if err != nil {
		return nil, err
	}
	if ever && len(res.Pending) > 0 {
		n.man.hashPending(n.now(), res)
		if err := n.man.save(res.Sigs); err != nil {
			return nil, err
		}
	}
	return view, nil
}

// failbackAndReplan does the failback work of p, scans again and plans the push of the
// result; what the rescan finds unstable or unreadable is skipped (skip reads those maps).
func (n *Node) failbackAndReplan(ctx context.Context, pc *peerConn, p *plan, pl *planInput, res *scanResult, unreadable map[string]bool, st *RunStats) (*plan, error) {
	man := n.man
	if err := n.failback(ctx, pc, p, pl, st); err != nil {
		return nil, err
	}
	res2 := man.scan(n.now(), false)
	n.lastScanOK = false
	if err := man.save(res2.Sigs); err != nil {
		return nil, err
	}
	for k := range res2.Unstable {
		res.Unstable[k] = true
	}
	for k := range res2.Unreadable {
		unreadable[k] = true
	}
	st.Errors = append(st.Errors, res2.Errors...)
	pl.sCur = man.curSet()
	return makePlan(pl), nil
}

// noteUnreadable names in st the entries this node (mine) and the replica (theirs) could not
// read or list, and returns them all: the run leaves them alone.
func (n *Node) noteUnreadable(st *RunStats, mine map[string]bool, theirs []string) map[string]bool {
	all := maps.Clone(mine)
	st.Unreadable = nil
	for _, p := range slices.Sorted(maps.Keys(mine)) {
		st.Unreadable = append(st.Unreadable, n.fs.absKey(p))
	}
	for _, p := range theirs {
		all[p] = true
		st.Unreadable = append(st.Unreadable, n.fs.absKey(p)+" (on the replica)")
		st.Errors = append(st.Errors, "cannot read "+n.fs.absKey(p)+" on the replica: not changed or deleted there")
	}
	return all
}

func (n *Node) fetchManifest(pc *peerConn) (map[string]viewEntry, error) {
	if err := pc.sendRaw(MsgManifestReq, nil); err != nil {
		return nil, err
	}
	if err := pc.flush(); err != nil {
		return nil, err
	}
	view := map[string]viewEntry{}
	for {
		t, p, err := pc.recv()
		if err != nil {
			return nil, err
		}
		if t != MsgManifest {
			return nil, fmt.Errorf("%w: %d, want manifest", ErrFrameType, t)
		}
		b, err := pc.zdec.DecodeAll(p, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: manifest: %w", ErrBadValue, err)
		}
		var m manifestMsg
		if err := m.UnmarshalBinary(b); err != nil {
			return nil, err
		}
		for _, e := range m.Entries {
			view[e.Path] = e
		}
		if m.Last {
			return view, nil
		}
	}
}

// pushRun is what one push learns while it sends: which files were read (sent[p] false: left
// for the next run), the hashes and block sums of new files computed while they were sent.
type pushRun struct {
	pc       *peerConn
	st       *RunStats
	sent     map[string]bool
	computed map[string]Hash
	newSigs  map[Hash]*sigs
}

// push sends the plan and records the new bases.
func (n *Node) push(pc *peerConn, p *plan, st *RunStats) (bool, error) {
	pr := &pushRun{pc: pc, st: st, sent: map[string]bool{}, computed: map[string]Hash{}, newSigs: map[Hash]*sigs{}}
	if err := n.fetchSigs(pc, p, pr.newSigs); err != nil {
		return false, err
	}
	if err := n.sendPlan(pr, p); err != nil {
		return false, err
	}
	t0 := time.Now()
	var r resultMsg
	if err := pc.expect(MsgResult, &r); err != nil {
		return false, err
	}
	n.log.Debug("sync: committed", "wait", time.Since(t0))
	failed, retry := n.noteFailed(&r, st)
	n.recordBases(p, failed, pr.sent, pr.computed)
	countApplied(p, failed, pr.sent, st)
	if err := n.man.save(pr.newSigs); err != nil {
		return false, err
	}
	if r.Fatal != "" {
		return false, &protocolError{fmt.Errorf("%w: %s", ErrDiskFull, r.Fatal)}
	}
	return retry, nil
}

// sendPlan sends the plan in push order, up to the Commit: folders, content the replica
// already has, a barrier, new and changed files, a barrier, voicemail .txt files, deletes.
func (n *Node) sendPlan(pr *pushRun, p *plan) error {
	pc := pr.pc
	for _, m := range p.mkdirs {
		if err := pc.send(MsgFile, &m); err != nil {
			return err
		}
	}
	for _, m := range p.locals {
		if err := pc.send(MsgFile, &m); err != nil {
			return err
		}
		pr.st.FilesLocal++
	}
	if err := pc.sendRaw(MsgBarrier, nil); err != nil {
		return err
	}
	for _, m := range p.files {
		if err := n.sendOne(pr, m); err != nil {
			if !errors.Is(err, errRetryFull) {
				return err
			}
			if err := n.sendOne(pr, fileMsg{Path: m.Path, Meta: m.Meta, Method: methodFull}); err != nil {
				return err
			}
		}
	}
	if err := pc.sendRaw(MsgBarrier, nil); err != nil {
		return err
	}
	for _, m := range p.txts {
		if err := n.sendOne(pr, m); err != nil {
			return err
		}
	}
	for _, d := range p.deletes {
		if err := pc.send(MsgDelete, &d); err != nil {
			return err
		}
	}
	return pc.sendRaw(MsgCommit, nil)
}

// sendOne sends one file message with its content. errRetryFull: a delta without block sums,
// to be sent whole.
func (n *Node) sendOne(pr *pushRun, m fileMsg) error {
	switch m.Method {
	case methodFull:
		return n.sendFull(pr, m)
	case methodDelta:
		return n.sendDelta(pr, m)
	default:
		return pr.pc.send(MsgFile, &m)
	}
}

// sendFull sends a file whole; one that cannot be opened is left for the next run.
func (n *Node) sendFull(pr *pushRun, m fileMsg) error {
	st := pr.st
	r, rel, err := n.fs.resolve(m.Path)
	if err != nil {
		return err
	}
	f, err := r.Open(rel)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			st.Errors = append(st.Errors, fmt.Sprintf("cannot read %s (not changed or deleted on the peer): %v", n.fs.abs(m.Path), err))
		}
		pr.sent[m.Path] = false
		st.Skipped++
		return nil
	}
	defer f.Close()
	if err := pr.pc.send(MsgFile, &m); err != nil {
		return err
	}
	k, h, sg, err := sendWhole(pr.pc, f, &m.Meta, compressible(m.Path), n.chunkHook())
	st.Literal += k
	st.FilesWhole++
	if m.Meta.Hash == (Hash{}) && err == nil {
		pr.computed[m.Path] = h
		if sg != nil {
			pr.newSigs[h] = sg
		}
	}
	return err
}

// sendDelta sends a file as a delta against the replica's version; one that changed since
// the scan is left for the next run.
func (n *Node) sendDelta(pr *pushRun, m fileMsg) error {
	st := pr.st
	r, rel, err := n.fs.resolve(m.Path)
	if err != nil {
		return err
	}
	data, ok := readStable(r, rel, &m.Meta)
	if !ok {
		pr.sent[m.Path] = false // changed since the scan: next run
		st.Skipped++
		return nil
	}
	s := pr.newSigs[m.Basis]
	if s == nil {
		s = n.man.loadSigs(m.Basis)
	}
	if s == nil {
		return errRetryFull
	}
	d := makeDelta(data, s)
	if err := pr.pc.send(MsgFile, &m); err != nil {
		return err
	}
	for off := 0; off < len(d); off += chunkSize {
		if _, err := pr.pc.sendData(d[off:min(off+chunkSize, len(d))], false); err != nil {
			return err
		}
	}
	st.Literal += int64(len(d))
	st.FilesDelta++
	return pr.pc.send(MsgFileEnd, &fileEndMsg{Hash: m.Meta.Hash})
}

// noteFailed names in st what the replica could not apply and returns those paths; retry
// reports deltas that failed there and are sent whole by a second exchange.
func (n *Node) noteFailed(r *resultMsg, st *RunStats) (failed map[string]bool, retry bool) {
	failed = map[string]bool{}
	for _, f := range r.Failed {
		failed[f.Path] = true
		if f.Retry {
			n.noDelta[f.Path] = true
			retry = true
		}
		if f.Path == "" {
			st.Errors = append(st.Errors, "replica: "+f.Err)
		} else {
			st.Errors = append(st.Errors, n.fs.abs(f.Path)+": "+f.Err)
		}
	}
	return failed, retry
}

// countApplied counts in st the files and deletes the replica applied.
func countApplied(p *plan, failed, sent map[string]bool, st *RunStats) {
	for _, l := range [][]fileMsg{p.locals, p.files, p.txts} {
		for _, m := range l {
			if ok, seen := sent[m.Path]; !failed[m.Path] && m.Method != methodBase && (ok || !seen) {
				st.Files++
			}
		}
	}
	for _, d := range p.deletes {
		if !failed[d.Path] {
			st.Deleted++
		}
	}
}

// recordBases records, after a Commit, the new base of every path the replica applied:
// neither failed there nor left unsent here; a new file gets the hash computed while it was
// sent.
func (n *Node) recordBases(p *plan, failed, sent map[string]bool, computed map[string]Hash) {
	man := n.man
	for path, b := range p.newBase {
		if failed[path] {
			continue
		}
		if ok, seen := sent[path]; seen && !ok {
			continue
		}
		if b == nil {
			if r := man.recs[path]; r != nil && r.Base != nil {
				man.setBase(path, nil)
			}
			continue
		}
		if b.Kind == KindFile && b.Hash == (Hash{}) {
			h, ok := computed[path]
			if !ok {
				continue // not sent (changed, vanished): hashed by the next scan
			}
			nb := *b
			nb.Hash = h
			b = &nb
			if r := man.recs[path]; r != nil && r.Cur != nil && r.Cur.Hash == (Hash{}) && r.Cur.Size == b.Size && r.Cur.Mtime == b.Mtime {
				c := *r.Cur
				c.Hash = h
				r.Cur = &c
				r.Racy = false
				man.markDirty(path)
			}
		}
		if r := man.recs[path]; r == nil || r.Base == nil || *r.Base != *b {
			man.setBase(path, b)
		}
		if r := man.recs[path]; r != nil && r.Cur != nil && sameContent(r.Cur, b) {
			delete(n.noDelta, path)
		}
	}
}

var errRetryFull = errors.New("retry whole")

// failback takes back what the replica changed since the last sync, before the push can
// overwrite it: adopted files, .conflict copies, voicemail merged under new numbers.
func (n *Node) failback(ctx context.Context, pc *peerConn, p *plan, pl *planInput, st *RunStats) error {
	stamp := trashStamp(n.now())
	defer n.fs.cleanTrash(stamp)
	for _, d := range p.smkdirs {
		r, rel, err := n.fs.resolve(d)
		if err != nil {
			return err
		}
		m := pl.view[d].Cur
		if err := r.MkdirAll(rel, modeOf(m)); err == nil {
			pl.resolved[d] = true
		}
	}
	for _, f := range p.adopt {
		if err := n.pull(pc, f, f, st); err != nil {
			return err
		}
		pl.resolved[f] = true
	}
	gone := map[string]bool{} // deleted here by this failback
	for _, f := range p.sdeletes {
		if err := n.fs.toTrash(f, stamp); err != nil {
			st.Errors = append(st.Errors, err.Error())
			continue
		}
		gone[f] = true
		pl.resolved[f] = true
	}
	for _, f := range p.conflicts {
		dst := n.conflictName(f)
		if err := n.pull(pc, f, dst, st); err != nil {
			return err
		}
		pl.resolved[f] = true
		st.Conflicts++
		n.recordConflict(f, dst)
		n.emit(Event{Kind: EventConflict, Path: n.fs.abs(dst),
			Detail: fmt.Sprintf("%s was changed on both nodes; the peer's version is kept as %s", n.fs.abs(f), n.fs.abs(dst))})
	}
	groups := make([]string, 0, len(p.merges))
	for g := range p.merges {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	for _, g := range groups {
		if err := n.mergeMessage(pc, g, pl, gone, st); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// pull copies the replica's file from into this node's tree at to (temp, fsync, rename).
func (n *Node) pull(pc *peerConn, from, to string, st *RunStats) error {
	if err := pc.send(MsgPull, &pathMsg{Path: from}); err != nil {
		return err
	}
	if err := pc.flush(); err != nil {
		return err
	}
	t, b, err := pc.recv()
	if err != nil {
		return err
	}
	if t == MsgFileAbort {
		st.Errors = append(st.Errors, "pull "+from+": not available on the peer")
		return nil
	}
	if t != MsgFile {
		return fmt.Errorf("%w: %d, want file", ErrFrameType, t)
	}
	var m fileMsg
	if err := m.UnmarshalBinary(b); err != nil {
		return err
	}
	if m.Path != from || m.Method != methodFull || m.Meta.Kind != KindFile {
		return fmt.Errorf("%w: pulled %q, asked %q", ErrBadValue, m.Path, from)
	}
	f, tmp, err := n.fs.createTemp(to)
	if err != nil {
		_, _, rerr := recvData(pc, io.Discard, nil)
		st.Errors = append(st.Errors, fmt.Sprintf("pull %s: %v", n.fs.abs(to), err))
		return rerr
	}
	h := newContentHasher(m.Meta.Size)
	sw := &sparseWriter{f: f}
	end, werr, err := recvData(pc, sw, h)
	if err != nil {
		n.fs.discardTemp(f, tmp, to)
		return err
	}
	if werr == nil {
		werr = sw.finish()
	}
	got, _ := h.finish()
	if werr != nil || end == nil || got != end.Hash || got != m.Meta.Hash {
		n.fs.discardTemp(f, tmp, to)
		st.Errors = append(st.Errors, fmt.Sprintf("pull %s: incomplete", n.fs.abs(to)))
		return nil
	}
	if _, err := n.fs.commitTemp(f, tmp, to, &m.Meta); err != nil {
		n.fs.discardTemp(f, tmp, to)
		st.Errors = append(st.Errors, fmt.Sprintf("pull %s: %v", n.fs.abs(to), err))
		return nil
	}
	f.Close()
	i, rel := splitWirePath(to)
	d := path.Dir(rel)
	if d == "." {
		d = ""
	}
	_ = n.fs.fsyncDir(i, d)
	st.Pulled++
	return nil
}

func (n *Node) conflictName(wp string) string {
	for k := 1; ; k++ {
		c := wp + ".conflict"
		if k > 1 {
			c = fmt.Sprintf("%s.conflict%d", wp, k)
		}
		if r, rel, err := n.fs.resolve(c); err == nil {
			if _, err := r.Lstat(rel); err != nil {
				return c
			}
		}
	}
}

func (n *Node) recordConflict(orig, copyPath string) {
	rec, _ := json.Marshal(map[string]string{"at": n.now().UTC().Format(time.RFC3339), "path": n.fs.abs(orig), "peer_copy": n.fs.abs(copyPath)})
	f, err := os.OpenFile(filepath.Join(n.cfg.StateDir, "conflicts.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(rec, '\n'))
}

// freeMessageNumber returns the lowest message number not used in the folder frel of r
// (10000 when all are).
func freeMessageNumber(r *os.Root, frel string) (int, error) {
	dir, err := r.Open(frel)
	if err != nil {
		return 0, err
	}
	ents, err := dir.ReadDir(-1)
	dir.Close()
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, e := range ents {
		var k int
		if msgRe.MatchString(e.Name()) {
			fmt.Sscanf(e.Name()[3:7], "%d", &k)
			used[k] = true
		}
	}
	num := 0
	for used[num] {
		num++
	}
	return num, nil
}

// mergeMessage places a voicemail message the replica recorded (group "<folder>/msgNNNN")
// into this node's folder under the first free message number, audio first and .txt last,
// holding the folder's .lock as Asterisk does. A message whose audio already exists in this
// node's mailbox is not copied twice; a copy this failback deleted (gone: the replica moved
// the message, to g) does not count.
func (n *Node) mergeMessage(pc *peerConn, g string, pl *planInput, gone map[string]bool, st *RunStats) error {
	var files []string
	for p, v := range pl.view {
		if v.Cur != nil && v.Cur.Kind == KindFile && strings.TrimSuffix(p, path.Ext(p)) == g {
			files = append(files, p)
		}
	}
	slices.SortFunc(files, func(a, b string) int {
		ta, tb := strings.HasSuffix(a, ".txt"), strings.HasSuffix(b, ".txt")
		if ta != tb {
			if ta {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	folder := path.Dir(g)
	mailbox := path.Dir(folder) + "/"
	have := map[Hash]bool{}
	for p, m := range pl.sCur {
		if m.Kind == KindFile && strings.HasPrefix(p, mailbox) && !gone[p] {
			have[m.Hash] = true
		}
	}
	dup := true
	for _, f := range files {
		if !strings.HasSuffix(f, ".txt") && !have[pl.view[f].Cur.Hash] {
			dup = false
		}
	}
	if dup {
		for _, f := range files {
			pl.resolved[f] = true
		}
		return nil
	}
	r, frel, err := n.fs.resolve(folder)
	if err != nil {
		return err
	}
	if err := r.MkdirAll(frel, 0o755); err != nil {
		st.Errors = append(st.Errors, err.Error())
		return nil
	}
	lock, err := r.OpenFile(path.Join(frel, ".lock"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		st.Skipped += len(files) // Asterisk holds the folder: merge on the next run
		return nil
	}
	lock.Close()
	defer r.Remove(path.Join(frel, ".lock"))
	num, err := freeMessageNumber(r, frel)
	if err != nil {
		return err
	}
	if num > 9999 {
		st.Errors = append(st.Errors, "mailbox folder "+n.fs.abs(folder)+" full: message not merged")
		return nil
	}
	var dst string
	for _, f := range files {
		dst = fmt.Sprintf("%s/msg%04d%s", folder, num, path.Ext(f))
		if err := n.pull(pc, f, dst, st); err != nil {
			return err
		}
		pl.resolved[f] = true
	}
	n.emit(Event{Kind: EventMerged, Path: n.fs.abs(fmt.Sprintf("%s/msg%04d", folder, num)),
		Detail: fmt.Sprintf("voicemail %s recorded on the peer merged as msg%04d", n.fs.abs(g), num)})
	return nil
}

// fetchSigs asks the replica for the block sums of the basis of every delta whose sums this
// node does not hold (BlockSize 0 in the plan) and fills in the block sizes; a delta without
// sums becomes a whole-file transfer.
func (n *Node) fetchSigs(pc *peerConn, p *plan, got map[Hash]*sigs) error {
	var req sigReqMsg
	for _, l := range [][]fileMsg{p.files, p.txts} {
		for _, m := range l {
			if m.Method == methodDelta && m.BlockSize == 0 {
				req.Items = append(req.Items, sigReqItem{Path: m.Path, Basis: m.Basis})
			}
		}
	}
	if len(req.Items) > 0 {
		if err := pc.send(MsgSigReq, &req); err != nil {
			return err
		}
		if err := pc.flush(); err != nil {
			return err
		}
		for _, it := range req.Items {
			var sm sigsMsg
			if err := pc.expect(MsgSigs, &sm); err != nil {
				return err
			}
			if sm.Path != it.Path {
				return fmt.Errorf("%w: sums for %q, asked %q", ErrBadValue, sm.Path, it.Path)
			}
			if len(sm.Sums) == 0 {
				continue
			}
			s := new(sigs)
			if err := s.UnmarshalBinary(sm.Sums); err != nil || s.BlockSize == 0 || s.BlockSize > maxBlock ||
				int64(len(s.Weak)) != (s.Size+int64(s.BlockSize)-1)/int64(s.BlockSize) {
				return fmt.Errorf("%w: block sums for %q", ErrBadValue, it.Path)
			}
			got[it.Basis] = s
		}
	}
	for _, l := range []*[]fileMsg{&p.files, &p.txts} {
		for i := range *l {
			m := &(*l)[i]
			if m.Method != methodDelta || m.BlockSize != 0 {
				continue
			}
			if s := got[m.Basis]; s != nil {
				m.BlockSize = s.BlockSize
			} else {
				m.Method, m.Basis = methodFull, Hash{}
			}
		}
	}
	return nil
}
