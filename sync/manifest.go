package sync

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
	"lukechampine.com/blake3"
)

// The manifest is the persistent record of every replicated entry on this node: what is on
// disk now (Cur, with the stat fields that let a scan skip rehashing: size, mtime, inode,
// ctime, mode) and what was last synced with the peer (Base). Base is the merge base of the
// three-way decision after a failover: a path whose Cur differs from its Base was changed on
// this node since the last sync. A scan rehashes a file whenever any stat field moved, so an
// edit that keeps size and mtime is still seen (ctime changes), and a file modified within the
// second of a scan is rehashed on the next one ("racily clean", as git does).

var (
	bucketEntries = []byte("entries")
	bucketSigs    = []byte("sigs")
	bucketMeta    = []byte("meta")
	keyPeer       = []byte("peer")
)

type record struct {
	Cur   *Meta
	Base  *Meta
	Dev   uint64
	Ino   uint64
	Ctime int64
	Racy  bool
}

func (r *record) MarshalBinary() ([]byte, error) {
	e := enc{}
	var fl uint8
	if r.Cur != nil {
		fl |= 1
	}
	if r.Base != nil {
		fl |= 2
	}
	if r.Racy {
		fl |= 4
	}
	e.u8(fl)
	if r.Cur != nil {
		r.Cur.encode(&e)
	}
	if r.Base != nil {
		r.Base.encode(&e)
	}
	e.uv(r.Dev)
	e.uv(r.Ino)
	e.sv(r.Ctime)
	return e.b, nil
}

func (r *record) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	fl := d.u8()
	if fl&1 != 0 {
		r.Cur = new(Meta)
		r.Cur.decode(&d)
	}
	if fl&2 != 0 {
		r.Base = new(Meta)
		r.Base.decode(&d)
	}
	r.Racy = fl&4 != 0
	r.Dev = d.uv()
	r.Ino = d.uv()
	r.Ctime = d.sv()
	return d.done()
}

type manifest struct {
	db    *bolt.DB
	trees []string
	recs  map[string]*record
	peer  string // fingerprint of the peer that the bases refer to ("" = never synced)
	dirty map[string]bool
	owner bool // this process can keep ownership (root)

	inodes     map[[2]uint64]bool
	lastLocked map[string]bool // folders holding a .lock at the last scan
	// FIFOs, sockets and devices found by the last scan (reported again when a run skips
	// the walk)
	lastSpecial      int
	lastSpecialPaths []string
	version          uint64 // bumped on every change, keys the digest cache
	digests          map[digestKey]Hash
}

type digestKey struct {
	version uint64
	base    bool
	owner   bool
}

func (m *manifest) markDirty(p string) {
	m.dirty[p] = true
	m.version++
}

// digest returns the digest of the current (or base) entries, cached until the next change.
func (m *manifest) digest(base, owner bool) Hash {
	k := digestKey{m.version, base, owner}
	if h, ok := m.digests[k]; ok {
		return h
	}
	var h Hash
	if base {
		h = digestOf(m.baseSet(), owner)
	} else {
		h = digestOf(m.curSet(), owner)
	}
	m.digests = map[digestKey]Hash{k: h}
	return h
}

func openManifest(file string, trees []string) (*manifest, error) {
	db, err := bolt.Open(file, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open manifest %s: %w", file, err)
	}
	m := &manifest{db: db, trees: trees, recs: map[string]*record{}, dirty: map[string]bool{}, owner: os.Geteuid() == 0}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEntries, bucketSigs, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m.peer = string(tx.Bucket(bucketMeta).Get(keyPeer))
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			r := new(record)
			if err := r.UnmarshalBinary(v); err != nil {
				return fmt.Errorf("entry %q: %w", k, err)
			}
			if checkWirePath(string(k)) != nil {
				return nil
			}
			m.recs[string(k)] = r
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("load manifest %s: %w", file, err)
	}
	return m, nil
}

func (m *manifest) close() error { return m.db.Close() }

// save writes the dirty records and new block sums in one transaction.
func (m *manifest) save(newSigs map[Hash]*sigs) error {
	if len(m.dirty) == 0 && len(newSigs) == 0 {
		return nil
	}
	err := m.db.Update(func(tx *bolt.Tx) error {
		eb := tx.Bucket(bucketEntries)
		for p := range m.dirty {
			r := m.recs[p]
			if r == nil || (r.Cur == nil && r.Base == nil) {
				if err := eb.Delete([]byte(p)); err != nil {
					return err
				}
				delete(m.recs, p)
				continue
			}
			v, _ := r.MarshalBinary()
			if err := eb.Put([]byte(p), v); err != nil {
				return err
			}
		}
		sb := tx.Bucket(bucketSigs)
		for h, s := range newSigs {
			v, _ := s.MarshalBinary()
			if err := sb.Put(h[:], v); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyPeer, []byte(m.peer))
	})
	if err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	clear(m.dirty)
	return nil
}

// setPeer records the peer the bases refer to; a different peer invalidates every base.
func (m *manifest) setPeer(fp string) {
	if m.peer == fp {
		return
	}
	if m.peer != "" {
		for p, r := range m.recs {
			if r.Base != nil {
				r.Base = nil
				m.markDirty(p)
			}
		}
	}
	m.peer = fp
}

func (m *manifest) loadSigs(h Hash) *sigs {
	var s *sigs
	_ = m.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSigs).Get(h[:])
		if v == nil {
			return nil
		}
		s = new(sigs)
		if s.UnmarshalBinary(v) != nil {
			s = nil
		}
		return nil
	})
	return s
}

// pruneSigs drops block sums no current or base entry refers to.
func (m *manifest) pruneSigs() error {
	keep := map[Hash]bool{}
	for _, r := range m.recs {
		if r.Cur != nil {
			keep[r.Cur.Hash] = true
		}
		if r.Base != nil {
			keep[r.Base.Hash] = true
		}
	}
	return m.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSigs)
		var drop [][]byte
		_ = b.ForEach(func(k, _ []byte) error {
			var h Hash
			copy(h[:], k)
			if !keep[h] {
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// scanResult is what one scan found besides the manifest update.
// racyWindow: a file whose mtime or ctime is this close to the scan could still be modified
// within the same timestamp tick (Linux file times advance by a jiffy, at most 10 ms) without
// any stat field moving, so it is rehashed on the next scan.
const racyWindow = 50 * time.Millisecond

type scanResult struct {
	Locked   map[string]bool // folders (wire paths) holding a .lock: skipped this run
	Unstable map[string]bool // files that changed while being hashed
	// Unreadable holds entries this node could not stat, read or list (permission denied,
	// I/O error): wire paths, or the tree index alone for a whole tree. Their records are
	// kept as they were, and nothing at or under them is changed or deleted on the peer
	// (rsync: "IO error encountered -- skipping file deletion").
	Unreadable map[string]bool
	// Special counts the FIFOs, sockets and device nodes found, which are not replicated;
	// SpecialPaths names the first maxReported of them, sorted.
	Special      int
	SpecialPaths []string
	Errors       []string
	Hashed       int
	Sigs         map[Hash]*sigs
	Pending      map[string]bool // new files to be hashed while sent
	jobs         []hashJob
	pending      []hashJob
}

// anyRacy reports whether some entry must be rehashed by the next scan.
func (m *manifest) anyRacy() bool {
	for _, r := range m.recs {
		if r.Racy && r.Cur != nil {
			return true
		}
	}
	return false
}

// knownInode reports whether a current file of the manifest has this inode (before the scan).
func (m *manifest) knownInode(dev, ino uint64) bool {
	if m.inodes == nil {
		m.inodes = map[[2]uint64]bool{}
		for _, r := range m.recs {
			if r.Cur != nil && r.Cur.Kind == KindFile {
				m.inodes[[2]uint64{r.Dev, r.Ino}] = true
			}
		}
	}
	return m.inodes[[2]uint64{dev, ino}]
}

// hashPending hashes the files a deferred scan left pending (needed before a three-way
// comparison with the replica's manifest).
func (m *manifest) hashPending(now time.Time, res *scanResult) {
	res.jobs = res.pending
	res.pending = nil
	for _, j := range res.jobs {
		delete(res.Pending, j.wp)
	}
	m.hashJobs(now, map[string]bool{}, res)
}

// skipName reports names that are never replicated: Asterisk's in-flight files and our own
// temporary files.
func skipName(name string, dir bool) bool {
	if dir {
		return name == "tmp"
	}
	return name == ".lock" || strings.HasPrefix(name, ".lock-") || strings.HasPrefix(name, tmpPrefix)
}

const tmpPrefix = ".rdsync-"

// scan walks the trees, updates Cur of every record and returns what it found. now is the
// scan start (injected for the racy-clean rule).
//
// With deferNew (source side), a file at a path the manifest has never seen, and whose inode
// is not that of a known file (so it was not renamed there), is not read now: it gets a zero
// hash and is hashed while it is sent, which overlaps reading it with the transfer. Its
// record is marked racy, so if it is not sent this run it is hashed by the next scan.
func (m *manifest) scan(now time.Time, deferNew bool) scanResult {
	res := newScanResult()
	seen := make(map[string]bool, len(m.recs))
	m.inodes = nil
	for ti, root := range m.trees {
		m.walk(ti, root, "", now, seen, &res)
	}
	if deferNew {
		keep := res.jobs[:0]
		for _, j := range res.jobs {
			if j.r == nil && !m.knownInode(statDev(&j.st), j.st.Ino) {
				seen[j.wp] = true
				res.Pending[j.wp] = true
				res.pending = append(res.pending, j)
				m.update(j.wp, nil, &j.cur, &j.st, true)
				continue
			}
			keep = append(keep, j)
		}
		res.jobs = keep
	}
	m.hashJobs(now, seen, &res)
	slices.Sort(res.SpecialPaths)
	res.SpecialPaths = res.SpecialPaths[:min(len(res.SpecialPaths), maxReported)]
	m.lastLocked = res.Locked
	m.lastSpecial, m.lastSpecialPaths = res.Special, res.SpecialPaths
	for p, r := range m.recs {
		if !seen[p] && r.Cur != nil && !underAny(p, res.Unreadable) {
			r.Cur = nil
			m.markDirty(p)
		}
	}
	return res
}

// newScanResult returns an empty result.
func newScanResult() scanResult {
	return scanResult{Locked: map[string]bool{}, Unstable: map[string]bool{}, Sigs: map[Hash]*sigs{},
		Pending: map[string]bool{}, Unreadable: map[string]bool{}}
}

// maxReported bounds the paths one run names in its statistics and events.
const maxReported = 20

// underAny reports whether wire path p, or one of its ancestors (up to the tree index
// alone), is in set.
func underAny(p string, set map[string]bool) bool {
	if len(set) == 0 {
		return false
	}
	for {
		if set[p] {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// unreadable records an entry (or folder) this scan could not stat, read or list.
func (res *scanResult) unreadable(key, format string, args ...any) {
	res.Errors = append(res.Errors, fmt.Sprintf(format, args...))
	res.Unreadable[key] = true
}

// walk scans folder rel of tree ti and reports whether it could list it completely; a folder
// it could not list is recorded in res.Unreadable and its entries keep their records.
func (m *manifest) walk(ti int, root, rel string, now time.Time, seen map[string]bool, res *scanResult) bool {
	dir := filepath.Join(root, rel)
	key := strconv.Itoa(ti)
	if rel != "" {
		key = wirePath(ti, rel)
	}
	const unlistable = "cannot list %s (nothing under it is changed or deleted on the peer): %v"
	f, err := os.Open(dir)
	if err != nil {
		if rel == "" && errors.Is(err, fs.ErrNotExist) {
			return true // a missing tree is empty
		}
		res.unreadable(key, unlistable, dir, err)
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		res.unreadable(key, unlistable, dir, err)
	}
	listed := err == nil
	dfd := int(f.Fd())
	if slices.Contains(names, ".lock") {
		res.Locked[wirePath(ti, rel)] = true
	}
	prefix := strconv.Itoa(ti) + "/"
	if rel != "" {
		prefix += rel + "/"
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				res.unreadable(prefix+name, "cannot stat %s (not changed or deleted on the peer): %v", filepath.Join(dir, name), err)
			}
			continue
		}
		ft := st.Mode & unix.S_IFMT
		if skipName(name, ft == unix.S_IFDIR) || (rel == "" && name == trashDirName) {
			continue
		}
		// A name from the kernel has no slash or NUL and is neither "." nor "..": wp is a
		// valid wire path.
		wp := prefix + name
		cur := Meta{Mode: statMode(&st) & 0o7777, UID: st.Uid, GID: st.Gid}
		r := m.recs[wp]
		switch ft {
		case unix.S_IFDIR:
			cur.Kind = KindDir
			seen[wp] = true
			// A folder that cannot be listed keeps its record (mode included): the peer's
			// copy is left as it is.
			if m.walk(ti, root, wp[len(strconv.Itoa(ti))+1:], now, seen, res) {
				m.update(wp, r, &cur, &st, false)
			}
		case unix.S_IFLNK:
			m.walkLink(dir, name, wp, r, cur, &st, seen, res)
		case unix.S_IFREG:
			m.walkFile(filepath.Join(dir, name), wp, r, cur, &st, seen, res)
		default:
			// FIFOs, sockets and device nodes are not replicated; the run reports them.
			res.Special++
			res.SpecialPaths = append(res.SpecialPaths, filepath.Join(dir, name))
		}
	}
	return listed
}

// walkLink records a symlink found by walk; one pointing outside the trees is skipped.
func (m *manifest) walkLink(dir, name, wp string, r *record, cur Meta, st *unix.Stat_t, seen map[string]bool, res *scanResult) {
	full := filepath.Join(dir, name)
	target, err := os.Readlink(full)
	if err != nil {
		res.unreadable(wp, "cannot read link %s (not changed or deleted on the peer): %v", full, err)
		return
	}
	if !m.linkInside(dir, target) {
		res.Errors = append(res.Errors, fmt.Sprintf("symlink %s -> %s points outside the replicated trees: skipped", full, target))
		return
	}
	cur.Kind = KindSymlink
	cur.Target = target
	cur.Hash = hashBytes([]byte(target))
	seen[wp] = true
	m.update(wp, r, &cur, st, false)
}

// walkFile records a regular file found by walk: unchanged stat fields keep its hash,
// otherwise it is queued for hashing.
func (m *manifest) walkFile(full, wp string, r *record, cur Meta, st *unix.Stat_t, seen map[string]bool, res *scanResult) {
	cur.Kind = KindFile
	cur.Size = st.Size
	cur.Mtime = st.Mtim.Nano()
	ctime := st.Ctim.Nano()
	if r != nil && r.Cur != nil && !r.Racy && r.Cur.Kind == KindFile && r.Cur.Size == cur.Size &&
		r.Cur.Mtime == cur.Mtime && r.Ino == st.Ino && r.Dev == statDev(st) && r.Ctime == ctime {
		cur.Hash = r.Cur.Hash
		seen[wp] = true
		m.update(wp, r, &cur, st, false)
		return
	}
	res.jobs = append(res.jobs, hashJob{wp: wp, full: full, st: *st, cur: cur, r: r})
}

// hashJob is a file whose stat moved since the last scan; jobs are hashed in parallel after
// the walk.
type hashJob struct {
	wp, full string
	st       unix.Stat_t
	cur      Meta
	r        *record
	h        Hash
	sg       *sigs
	stable   bool
	err      error
}

func (m *manifest) hashJobs(now time.Time, seen map[string]bool, res *scanResult) {
	jobs := res.jobs
	res.jobs = nil
	next := make(chan int)
	var wg stdsync.WaitGroup
	for range min(hashWorkers, len(jobs)) {
		wg.Go(func() {
			for i := range next {
				j := &jobs[i]
				j.h, j.sg, j.stable, j.err = hashFile(j.full, &j.st)
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i := range jobs {
		j := &jobs[i]
		res.Hashed++
		if j.err != nil {
			if !errors.Is(j.err, fs.ErrNotExist) {
				// Unreadable (permission denied, I/O error): keep the old record, and leave
				// the peer's copy alone.
				res.Errors = append(res.Errors, fmt.Sprintf("cannot read %s (not changed or deleted on the peer): %v", j.full, j.err))
				res.Unreadable[j.wp] = true
				if j.r != nil {
					seen[j.wp] = j.r.Cur != nil
				}
			}
			continue
		}
		if !j.stable {
			res.Unstable[j.wp] = true
			if j.r != nil {
				seen[j.wp] = j.r.Cur != nil // keep the old record; it is skipped this run
			}
			continue
		}
		j.cur.Hash = j.h
		if j.sg != nil {
			res.Sigs[j.h] = j.sg
		}
		seen[j.wp] = true
		ctime := j.st.Ctim.Nano()
		racy := now.UnixNano()-j.cur.Mtime < int64(racyWindow) || now.UnixNano()-ctime < int64(racyWindow)
		m.update(j.wp, j.r, &j.cur, &j.st, racy)
	}
}

const hashWorkers = 2

func (m *manifest) update(wp string, r *record, cur *Meta, st *unix.Stat_t, racy bool) {
	if r == nil {
		r = &record{}
		m.recs[wp] = r
	}
	ctime := st.Ctim.Nano()
	if r.Cur != nil && *r.Cur == *cur && r.Ino == st.Ino && r.Dev == statDev(st) && r.Ctime == ctime && r.Racy == racy {
		return
	}
	c := *cur
	r.Cur = &c
	r.Ino, r.Dev, r.Ctime, r.Racy = st.Ino, statDev(st), ctime, racy
	m.markDirty(wp)
}

// linkInside reports whether a symlink target, resolved lexically from dir, stays inside one
// of the replicated trees.
func (m *manifest) linkInside(dir, target string) bool {
	t := target
	if !filepath.IsAbs(t) {
		t = filepath.Join(dir, t)
	}
	t = filepath.Clean(t)
	for _, root := range m.trees {
		if rel, err := filepath.Rel(root, t); err == nil && filepath.IsLocal(rel) {
			return true
		}
		if t == filepath.Clean(root) {
			return true
		}
	}
	return false
}

// hashFile hashes a file and reports whether it stayed unchanged while it was read.
func hashFile(full string, before *unix.Stat_t) (Hash, *sigs, bool, error) {
	f, err := os.Open(full)
	if err != nil {
		return Hash{}, nil, false, err
	}
	defer f.Close()
	c := newContentHasher(before.Size)
	if _, err := io.Copy(c, f); err != nil {
		return Hash{}, nil, false, fmt.Errorf("read %s: %w", full, err)
	}
	var after unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &after); err != nil {
		return Hash{}, nil, false, err
	}
	h, s := c.finish()
	return h, s, sameUnixStat(before, &after) && c.n == after.Size, nil
}

func sameUnixStat(a, b *unix.Stat_t) bool {
	return a.Size == b.Size && a.Mtim == b.Mtim && a.Ctim == b.Ctim && a.Ino == b.Ino && a.Dev == b.Dev
}

func sameStat(a, b fs.FileInfo) bool {
	_, inoA, ctimeA, okA := fileIdentity(a)
	_, inoB, ctimeB, okB := fileIdentity(b)
	if !okA || !okB {
		return false
	}
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && ctimeA == ctimeB && inoA == inoB
}

// digest summarises the current entries; the source computes the same over the bases it
// believes the replica holds, and equal digests mean there is nothing to compare.
func digestOf(entries map[string]*Meta, owner bool) Hash {
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := blake3.New(32, nil)
	e := enc{b: make([]byte, 0, 128)}
	for _, k := range keys {
		m := entries[k]
		e.b = e.b[:0]
		e.str(k)
		e.u8(uint8(m.Kind))
		e.hash(m.Hash)
		e.str(m.Target)
		e.uv(uint64(m.Mode))
		if m.Kind == KindFile {
			e.sv(m.Size)
			e.sv(m.Mtime)
		}
		if owner {
			e.uv(uint64(m.UID))
			e.uv(uint64(m.GID))
		}
		h.Write(e.b)
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// curSet and baseSet return the current and last-synced entries by path.
func (m *manifest) curSet() map[string]*Meta {
	out := make(map[string]*Meta, len(m.recs))
	for p, r := range m.recs {
		if r.Cur != nil {
			out[p] = r.Cur
		}
	}
	return out
}

func (m *manifest) baseSet() map[string]*Meta {
	out := make(map[string]*Meta, len(m.recs))
	for p, r := range m.recs {
		if r.Base != nil {
			out[p] = r.Base
		}
	}
	return out
}

// clean reports whether every entry equals its base (no local change since the last sync).
func (m *manifest) clean(owner bool) bool {
	for _, r := range m.recs {
		if (r.Cur == nil) != (r.Base == nil) {
			return false
		}
		if r.Cur != nil && (!sameContent(r.Cur, r.Base) || !sameAttrs(r.Cur, r.Base, owner)) {
			return false
		}
	}
	return true
}

func (m *manifest) setBase(p string, b *Meta) {
	r := m.recs[p]
	if r == nil {
		if b == nil {
			return
		}
		r = &record{}
		m.recs[p] = r
	}
	if b == nil {
		r.Base = nil
	} else {
		c := *b
		r.Base = &c
	}
	m.markDirty(p)
}
