package sync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Wire format of the sync protocol. Every message travels in one frame:
//
//	type (1 byte) | payload length (4 bytes, big endian) | payload
//
// Payloads are built from unsigned varints, zig-zag varints, length-prefixed byte strings and
// fixed 32-byte hashes. The protocol runs inside a mutually authenticated TLS 1.3 connection,
// but the decoder still treats every byte as hostile: lengths are bounded, paths are checked by
// checkWirePath before any use, and parsing copies out of the read buffer.

// Sentinel errors of the wire format; decoders wrap them with the failing field.
var (
	ErrFrameTooShort = errors.New("sync: frame too short")
	ErrFrameTooLarge = errors.New("sync: frame too large")
	ErrFrameType     = errors.New("sync: unknown frame type")
	ErrTruncated     = errors.New("sync: truncated payload")
	ErrTrailing      = errors.New("sync: trailing bytes in payload")
	ErrBadPath       = errors.New("sync: bad path")
	ErrBadValue      = errors.New("sync: bad value")
)

// maxFrame bounds one frame's payload; data chunks are at most chunkSize plus a small header.
const (
	frameHeader = 5
	maxFrame    = 4 << 20
	chunkSize   = 256 << 10
	protoVer    = 2 // 2: stateMsg.Unreadable
)

// MsgType identifies a frame's payload.
type MsgType uint8

// Frame types. The source sends Begin..Commit; the replica answers HelloAck, State, Manifest,
// Result and the files of a Pull.
const (
	MsgHello       MsgType = 1
	MsgHelloAck    MsgType = 2
	MsgBegin       MsgType = 3
	MsgState       MsgType = 4
	MsgManifestReq MsgType = 5
	MsgManifest    MsgType = 6
	MsgFile        MsgType = 7
	MsgData        MsgType = 8
	MsgFileEnd     MsgType = 9
	MsgFileAbort   MsgType = 10
	MsgDelete      MsgType = 11
	MsgBarrier     MsgType = 12
	MsgCommit      MsgType = 13
	MsgResult      MsgType = 14
	MsgPull        MsgType = 15
	MsgError       MsgType = 16
	MsgSigReq      MsgType = 17
	MsgSigs        MsgType = 18
	msgTypeMax             = 18
)

// Frame is one protocol frame.
type Frame struct {
	Type    MsgType
	Payload []byte
}

// Validate reports whether the frame can be sent.
func (f *Frame) Validate() error {
	if f.Type == 0 || f.Type > msgTypeMax {
		return fmt.Errorf("%w: %d", ErrFrameType, f.Type)
	}
	if len(f.Payload) > maxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(f.Payload))
	}
	return nil
}

// MarshalBinary encodes the frame with its header.
func (f *Frame) MarshalBinary() ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, frameHeader+len(f.Payload))
	b[0] = byte(f.Type)
	binary.BigEndian.PutUint32(b[1:5], uint32(len(f.Payload)))
	copy(b[5:], f.Payload)
	return b, nil
}

// UnmarshalBinary decodes exactly one frame; the payload is copied.
func (f *Frame) UnmarshalBinary(b []byte) error {
	if len(b) < frameHeader {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooShort, len(b))
	}
	t := MsgType(b[0])
	n := binary.BigEndian.Uint32(b[1:5])
	if t == 0 || t > msgTypeMax {
		return fmt.Errorf("%w: %d", ErrFrameType, t)
	}
	if n > maxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	if int(n) != len(b)-frameHeader {
		if int(n) > len(b)-frameHeader {
			return fmt.Errorf("%w: header says %d, have %d", ErrTruncated, n, len(b)-frameHeader)
		}
		return fmt.Errorf("%w: %d", ErrTrailing, len(b)-frameHeader-int(n))
	}
	f.Type = t
	f.Payload = append([]byte(nil), b[frameHeader:]...)
	return nil
}

// readFrame reads one frame from r into buf (grown as needed) and returns the type and a
// payload that aliases buf; callers decode it before the next read.
func readFrame(r io.Reader, buf *[]byte) (MsgType, []byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	t := MsgType(h[0])
	n := binary.BigEndian.Uint32(h[1:])
	if t == 0 || t > msgTypeMax {
		return 0, nil, fmt.Errorf("%w: %d", ErrFrameType, t)
	}
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	p := (*buf)[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return t, p, nil
}

// enc appends protocol fields to a byte slice.
type enc struct{ b []byte }

func (e *enc) u8(v uint8)     { e.b = append(e.b, v) }
func (e *enc) uv(v uint64)    { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) sv(v int64)     { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bytes(v []byte) { e.uv(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) str(v string)   { e.uv(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) hash(h Hash)    { e.b = append(e.b, h[:]...) }
func (e *enc) boolean(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// dec reads protocol fields; the first error sticks and later reads return zero values.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *dec) u8() uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.fail(ErrTruncated)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uv() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(ErrTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) sv() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(ErrTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) u32() uint32 {
	v := d.uv()
	if v > 1<<32-1 {
		d.fail(fmt.Errorf("%w: %d does not fit 32 bits", ErrBadValue, v))
		return 0
	}
	return uint32(v)
}

func (d *dec) bytes() []byte {
	n := d.uv()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(ErrTruncated)
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string {
	n := d.uv()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(ErrTruncated)
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) hash() Hash {
	var h Hash
	if d.err != nil || len(d.b) < len(h) {
		d.fail(ErrTruncated)
		return h
	}
	copy(h[:], d.b)
	d.b = d.b[len(h):]
	return h
}

func (d *dec) boolean() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(fmt.Errorf("%w: boolean", ErrBadValue))
		return false
	}
}

func (d *dec) path() string {
	p := d.str()
	if d.err == nil {
		if err := checkWirePath(p); err != nil {
			d.fail(err)
		}
	}
	return p
}

// done reports the sticky error, or ErrTrailing when bytes are left over.
func (d *dec) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d", ErrTrailing, len(d.b))
	}
	return nil
}

// maxTrees bounds the tree index of a wire path.
const maxTrees = 64

// checkWirePath accepts only "<tree>/<relative path>": a decimal tree index, then a clean,
// local, non-empty path without ".." components or NUL bytes. Absolute paths and traversal
// are refused here, before any file system call sees them.
func checkWirePath(p string) error {
	i := strings.IndexByte(p, '/')
	if i <= 0 {
		return fmt.Errorf("%w: %q has no tree index", ErrBadPath, p)
	}
	idx, err := strconv.Atoi(p[:i])
	if err != nil || idx < 0 || idx >= maxTrees || strconv.Itoa(idx) != p[:i] {
		return fmt.Errorf("%w: %q has a bad tree index", ErrBadPath, p)
	}
	rel := p[i+1:]
	if rel == "" || strings.IndexByte(rel, 0) >= 0 || path.Clean(rel) != rel || !filepath.IsLocal(rel) {
		return fmt.Errorf("%w: %q is not a clean relative path", ErrBadPath, p)
	}
	for _, c := range strings.Split(rel, "/") {
		if c == ".." || c == "." || c == "" {
			return fmt.Errorf("%w: %q", ErrBadPath, p)
		}
	}
	if first, _, _ := strings.Cut(rel, "/"); first == trashDirName {
		return fmt.Errorf("%w: %q is in the trash", ErrBadPath, p)
	}
	return nil
}

// splitWirePath returns the tree index and relative path of a checked wire path.
func splitWirePath(p string) (int, string) {
	i := strings.IndexByte(p, '/')
	idx, _ := strconv.Atoi(p[:i])
	return idx, p[i+1:]
}

func wirePath(tree int, rel string) string { return strconv.Itoa(tree) + "/" + rel }
