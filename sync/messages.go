package sync

import (
	"errors"
	"fmt"
	"strconv"
)

// Hash is a BLAKE3-256 content hash.
type Hash [32]byte

// Kind is the type of a replicated entry.
type Kind uint8

// Entry kinds.
const (
	KindFile    Kind = 1
	KindDir     Kind = 2
	KindSymlink Kind = 3
)

// Meta is what is replicated of one entry: content hash plus the attributes rsync -a keeps.
// Directories carry no hash or mtime (their mtime changes with every apply).
type Meta struct {
	Kind   Kind
	Size   int64
	Mtime  int64 // ns since the epoch
	Mode   uint32
	UID    uint32
	GID    uint32
	Hash   Hash
	Target string // symlink target
}

func (m *Meta) encode(e *enc) {
	e.u8(uint8(m.Kind))
	e.sv(m.Size)
	e.sv(m.Mtime)
	e.uv(uint64(m.Mode))
	e.uv(uint64(m.UID))
	e.uv(uint64(m.GID))
	e.hash(m.Hash)
	e.str(m.Target)
}

func (m *Meta) decode(d *dec) {
	m.Kind = Kind(d.u8())
	m.Size = d.sv()
	m.Mtime = d.sv()
	m.Mode = d.u32()
	m.UID = d.u32()
	m.GID = d.u32()
	m.Hash = d.hash()
	m.Target = d.str()
	if d.err == nil {
		if m.Kind < KindFile || m.Kind > KindSymlink {
			d.fail(fmt.Errorf("%w: kind %d", ErrBadValue, m.Kind))
		}
		if m.Size < 0 {
			d.fail(fmt.Errorf("%w: size %d", ErrBadValue, m.Size))
		}
	}
}

// sameContent reports whether two entries hold the same content (kind, hash, link target).
func sameContent(a, b *Meta) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Kind == b.Kind && a.Hash == b.Hash && a.Target == b.Target
}

// sameAttrs reports whether the attributes that are replicated agree; owner is compared only
// when owners can be kept.
func sameAttrs(a, b *Meta, owner bool) bool {
	if a.Mode != b.Mode {
		return false
	}
	if owner && (a.UID != b.UID || a.GID != b.GID) {
		return false
	}
	if a.Kind == KindFile && a.Mtime != b.Mtime {
		return false
	}
	return true
}

// helloMsg opens a connection (source -> replica) and answers it (HelloAck).
type helloMsg struct {
	Version uint8
	Role    Role
	Trees   Hash // digest of the configured tree list; both nodes must replicate the same trees
	OK      bool
	Reason  string
}

func (m *helloMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.u8(m.Version)
	e.u8(uint8(m.Role))
	e.hash(m.Trees)
	e.boolean(m.OK)
	e.str(m.Reason)
	return e.b, nil
}

func (m *helloMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	m.Version = d.u8()
	m.Role = Role(d.u8())
	m.Trees = d.hash()
	m.OK = d.boolean()
	m.Reason = d.str()
	if d.err == nil && m.Role > RoleReplica {
		d.fail(fmt.Errorf("%w: role %d", ErrBadValue, m.Role))
	}
	return wrapDec("hello", d.done())
}

// stateMsg is the replica's answer to Begin: a digest of its tree, so that a run with nothing
// to do costs one round trip.
type stateMsg struct {
	Digest Hash   // digest of the replica's current entries (see manifestDigest)
	Clean  bool   // every current entry equals its last-synced base
	Ever   bool   // the replica has completed a run with this source's identity before
	Owner  bool   // the replica can keep ownership (runs as root)
	Count  uint64 // number of entries
	Locked []string
	// Unreadable: entries the replica could not stat, read or list (wire paths, or a tree
	// index alone); the source changes and deletes nothing at or under them.
	Unreadable []string
}

func (m *stateMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.hash(m.Digest)
	e.boolean(m.Clean)
	e.boolean(m.Ever)
	e.boolean(m.Owner)
	e.uv(m.Count)
	e.uv(uint64(len(m.Locked)))
	for _, p := range m.Locked {
		e.str(p)
	}
	e.uv(uint64(len(m.Unreadable)))
	for _, p := range m.Unreadable {
		e.str(p)
	}
	return e.b, nil
}

func (m *stateMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	m.Digest = d.hash()
	m.Clean = d.boolean()
	m.Ever = d.boolean()
	m.Owner = d.boolean()
	m.Count = d.uv()
	n := d.uv()
	if n > uint64(len(b)) {
		d.fail(ErrTruncated)
	}
	m.Locked = nil
	for i := uint64(0); i < n && d.err == nil; i++ {
		m.Locked = append(m.Locked, d.path())
	}
	n = d.uv()
	if n > uint64(len(b)) {
		d.fail(ErrTruncated)
	}
	m.Unreadable = nil
	for i := uint64(0); i < n && d.err == nil; i++ {
		p := d.str()
		if k, err := strconv.Atoi(p); err == nil && k >= 0 && k < maxTrees && strconv.Itoa(k) == p {
			m.Unreadable = append(m.Unreadable, p)
			continue
		}
		if err := checkWirePath(p); err != nil {
			d.fail(err)
		}
		m.Unreadable = append(m.Unreadable, p)
	}
	return wrapDec("state", d.done())
}

// viewEntry is one line of the replica's manifest as the source sees it: what the replica has
// now (Cur) and what it last received (Base), for the three-way failback decision.
type viewEntry struct {
	Path string
	Cur  *Meta
	Base *Meta
}

// manifestMsg carries a chunk of the replica's manifest.
type manifestMsg struct {
	Entries []viewEntry
	Last    bool
}

func (m *manifestMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.boolean(m.Last)
	e.uv(uint64(len(m.Entries)))
	for i := range m.Entries {
		v := &m.Entries[i]
		e.str(v.Path)
		var fl uint8
		if v.Cur != nil {
			fl |= 1
		}
		if v.Base != nil {
			fl |= 2
		}
		e.u8(fl)
		if v.Cur != nil {
			v.Cur.encode(&e)
		}
		if v.Base != nil {
			v.Base.encode(&e)
		}
	}
	return e.b, nil
}

func (m *manifestMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	m.Last = d.boolean()
	n := d.uv()
	if n > uint64(len(b)) {
		d.fail(ErrTruncated)
	}
	m.Entries = nil
	for i := uint64(0); i < n && d.err == nil; i++ {
		var v viewEntry
		v.Path = d.path()
		fl := d.u8()
		if fl&^3 != 0 || fl == 0 {
			d.fail(fmt.Errorf("%w: entry flags %#x", ErrBadValue, fl))
		}
		if fl&1 != 0 {
			v.Cur = new(Meta)
			v.Cur.decode(&d)
		}
		if fl&2 != 0 {
			v.Base = new(Meta)
			v.Base.decode(&d)
		}
		m.Entries = append(m.Entries, v)
	}
	return wrapDec("manifest", d.done())
}

// Transfer methods of a fileMsg.
const (
	methodFull    = 1 // content follows in Data frames
	methodDelta   = 2 // delta against the replica's file at Path (content hash Basis) follows
	methodLocal   = 3 // copy (or, with Move, hard-link) the replica's own file Src
	methodMeta    = 4 // same content: set mode, owner and mtime only
	methodBase    = 5 // same content and attributes: record the base only
	methodMkdir   = 6
	methodSymlink = 7
	methodMax     = 7
)

// fileMsg announces one entry to create or update.
type fileMsg struct {
	Path      string
	Meta      Meta
	Method    uint8
	Src       string
	Move      bool
	Basis     Hash
	BlockSize uint32
}

func (m *fileMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.str(m.Path)
	m.Meta.encode(&e)
	e.u8(m.Method)
	e.str(m.Src)
	e.boolean(m.Move)
	e.hash(m.Basis)
	e.uv(uint64(m.BlockSize))
	return e.b, nil
}

func (m *fileMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	m.Path = d.path()
	m.Meta.decode(&d)
	m.Method = d.u8()
	m.Src = d.str()
	m.Move = d.boolean()
	m.Basis = d.hash()
	m.BlockSize = d.u32()
	if d.err == nil {
		if m.Method == 0 || m.Method > methodMax {
			d.fail(fmt.Errorf("%w: method %d", ErrBadValue, m.Method))
		}
		if m.Method == methodLocal {
			if err := checkWirePath(m.Src); err != nil {
				d.fail(err)
			}
		}
		if m.Method == methodDelta && (m.BlockSize == 0 || m.BlockSize > maxBlock) {
			d.fail(fmt.Errorf("%w: block size %d", ErrBadValue, m.BlockSize))
		}
	}
	return wrapDec("file", d.done())
}

// Data frames: one flag byte, then the bytes (zstd-compressed when flagged).
const dataZstd = 1

// fileEndMsg closes a file's data with the hash the source computed while reading it.
type fileEndMsg struct{ Hash Hash }

func (m *fileEndMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.hash(m.Hash)
	return e.b, nil
}

func (m *fileEndMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	m.Hash = d.hash()
	return wrapDec("file end", d.done())
}

// textMsg carries one string: FileAbort and Error reasons.
type textMsg struct{ Text string }

func (m *textMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.str(m.Text)
	return e.b, nil
}

func (m *textMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	m.Text = d.str()
	return wrapDec("text", d.done())
}

// pathMsg names one path: Pull requests.
type pathMsg struct{ Path string }

func (m *pathMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.str(m.Path)
	return e.b, nil
}

func (m *pathMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	m.Path = d.path()
	return wrapDec("path", d.done())
}

// deleteMsg removes an entry on the replica; Trash moves it into the trash area first
// (false only when its content lives on elsewhere in the tree, as after a renumbering).
type deleteMsg struct {
	Path  string
	Kind  Kind
	Trash bool
}

func (m *deleteMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.str(m.Path)
	e.u8(uint8(m.Kind))
	e.boolean(m.Trash)
	return e.b, nil
}

func (m *deleteMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	m.Path = d.path()
	m.Kind = Kind(d.u8())
	m.Trash = d.boolean()
	if d.err == nil && (m.Kind < KindFile || m.Kind > KindSymlink) {
		d.fail(fmt.Errorf("%w: kind %d", ErrBadValue, m.Kind))
	}
	return wrapDec("delete", d.done())
}

// pathErr is one failed path in a Result; Path is empty for a failure of the run that is not
// about one entry (the replica could not record the run in its state_dir).
type pathErr struct {
	Path  string
	Err   string
	Retry bool // delta did not reproduce the content: send it whole
}

func (p pathErr) asError() error { return errors.New(p.Err) }

// resultMsg answers Commit: everything announced since Begin was applied except Failed.
type resultMsg struct {
	Failed []pathErr
	Fatal  string // the run could not be applied at all (disk full, ...); nothing was deleted
}

func (m *resultMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.uv(uint64(len(m.Failed)))
	for _, f := range m.Failed {
		e.str(f.Path)
		e.str(f.Err)
		e.boolean(f.Retry)
	}
	e.str(m.Fatal)
	return e.b, nil
}

func (m *resultMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	n := d.uv()
	if n > uint64(len(b)) {
		d.fail(ErrTruncated)
	}
	m.Failed = nil
	for i := uint64(0); i < n && d.err == nil; i++ {
		var f pathErr
		if f.Path = d.str(); f.Path != "" && d.err == nil {
			if err := checkWirePath(f.Path); err != nil {
				d.fail(err)
			}
		}
		f.Err = d.str()
		f.Retry = d.boolean()
		m.Failed = append(m.Failed, f)
	}
	m.Fatal = d.str()
	return wrapDec("result", d.done())
}

func wrapDec(what string, err error) error {
	if err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// sigReqMsg asks the replica for the block sums of its version (Basis) of each path, for a
// delta when the source does not hold them (after a failover, the new source never hashed
// the files it received). The replica answers with one sigsMsg per item, in order.
type sigReqMsg struct {
	Items []sigReqItem
}

type sigReqItem struct {
	Path  string
	Basis Hash
}

func (m *sigReqMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.uv(uint64(len(m.Items)))
	for _, it := range m.Items {
		e.str(it.Path)
		e.hash(it.Basis)
	}
	return e.b, nil
}

func (m *sigReqMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	n := d.uv()
	if n > uint64(len(b)) {
		d.fail(ErrTruncated)
	}
	m.Items = nil
	for i := uint64(0); i < n && d.err == nil; i++ {
		var it sigReqItem
		it.Path = d.path()
		it.Basis = d.hash()
		m.Items = append(m.Items, it)
	}
	return wrapDec("sig request", d.done())
}

// sigsMsg carries the block sums of one requested path (empty: not available, the file is
// no longer the requested version).
type sigsMsg struct {
	Path string
	Sums []byte // sigs.MarshalBinary
}

func (m *sigsMsg) MarshalBinary() ([]byte, error) {
	e := enc{}
	e.str(m.Path)
	e.bytes(m.Sums)
	return e.b, nil
}

func (m *sigsMsg) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	m.Path = d.path()
	m.Sums = d.bytes()
	return wrapDec("sigs", d.done())
}
