package sync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"lukechampine.com/blake3"
)

// Delta transfer, rsync style (Tridgell's rolling checksum): a file is cut into blocks of about
// sqrt(length) bytes; each block has a weak rolling sum (a = sum x mod 2^16, b = sum (l-i)x
// mod 2^16) and a strong sum. Unlike rsync, the block sums are not sent by the receiver on
// every run: each node computes them when it hashes or receives a file and keeps them in its
// manifest, keyed by content hash. The source therefore knows the sums of the version the
// replica holds (the last-synced base) and sends only the delta. The strong sum is CRC-32C;
// a collision cannot go unnoticed because the replica checks the whole-file BLAKE3 hash of the
// result and the source then sends the file whole.

const (
	minBlock   = 700
	maxBlock   = 128 << 10
	sigMinSize = 64 << 10  // smaller files are always sent whole (compressed when it pays)
	maxDelta   = 256 << 20 // larger files are sent whole, streamed
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockSize returns the block length used for a file of size n.
func blockSize(n int64) uint32 {
	s := int64(math.Sqrt(float64(n)))
	s = (s + 7) &^ 7
	if s < minBlock {
		s = minBlock
	}
	if s > maxBlock {
		s = maxBlock
	}
	return uint32(s)
}

// sigs holds the block sums of one content version.
type sigs struct {
	BlockSize uint32
	Size      int64
	Weak      []uint32
	Strong    []uint32
}

func (s *sigs) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 16+8*len(s.Weak))
	b = binary.AppendUvarint(b, uint64(s.BlockSize))
	b = binary.AppendVarint(b, s.Size)
	for i := range s.Weak {
		b = binary.LittleEndian.AppendUint32(b, s.Weak[i])
		b = binary.LittleEndian.AppendUint32(b, s.Strong[i])
	}
	return b, nil
}

func (s *sigs) UnmarshalBinary(b []byte) error {
	d := dec{b: b}
	s.BlockSize = d.u32()
	s.Size = d.sv()
	if d.err != nil {
		return d.err
	}
	if len(d.b)%8 != 0 || s.BlockSize == 0 {
		return fmt.Errorf("%w: block sums", ErrBadValue)
	}
	n := len(d.b) / 8
	s.Weak = make([]uint32, n)
	s.Strong = make([]uint32, n)
	for i := 0; i < n; i++ {
		s.Weak[i] = binary.LittleEndian.Uint32(d.b[8*i:])
		s.Strong[i] = binary.LittleEndian.Uint32(d.b[8*i+4:])
	}
	return nil
}

// weakSum computes the rolling sum of a block; b = sum over j of the prefix sums of a, which is
// the same as sum (l-i) x_i without a multiplication per byte.
func weakSum(p []byte) uint32 {
	var a, b uint32
	for len(p) >= 4 {
		a += uint32(p[0])
		b += a
		a += uint32(p[1])
		b += a
		a += uint32(p[2])
		b += a
		a += uint32(p[3])
		b += a
		p = p[4:]
	}
	for _, x := range p {
		a += uint32(x)
		b += a
	}
	return (a & 0xffff) | (b&0xffff)<<16
}

// contentHasher computes the BLAKE3 hash and, for files of at least sigMinSize, the block sums
// of everything written to it, in one pass.
type contentHasher struct {
	h     *blake3.Hasher
	bs    int
	sig   *sigs
	block []byte
	n     int64
}

func newContentHasher(size int64) *contentHasher {
	c := &contentHasher{h: blake3.New(32, nil)}
	if size >= sigMinSize {
		c.bs = int(blockSize(size))
		c.sig = &sigs{BlockSize: uint32(c.bs)}
		c.block = make([]byte, 0, c.bs)
	}
	return c
}

func (c *contentHasher) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	if c.sig == nil {
		return len(p), nil
	}
	q := p
	for len(q) > 0 {
		if len(c.block) == 0 && len(q) >= c.bs {
			c.add(q[:c.bs])
			q = q[c.bs:]
			continue
		}
		k := min(c.bs-len(c.block), len(q))
		c.block = append(c.block, q[:k]...)
		q = q[k:]
		if len(c.block) == c.bs {
			c.add(c.block)
			c.block = c.block[:0]
		}
	}
	return len(p), nil
}

func (c *contentHasher) add(b []byte) {
	c.sig.Weak = append(c.sig.Weak, weakSum(b))
	c.sig.Strong = append(c.sig.Strong, crc32.Checksum(b, castagnoli))
}

// finish returns the content hash and the block sums (nil for small files).
func (c *contentHasher) finish() (Hash, *sigs) {
	var h Hash
	c.h.Sum(h[:0])
	if c.sig == nil || c.n < sigMinSize {
		return h, nil
	}
	if len(c.block) > 0 {
		c.add(c.block)
		c.block = c.block[:0]
	}
	c.sig.Size = c.n
	return h, c.sig
}

func hashBytes(b []byte) Hash {
	var h Hash
	s := blake3.Sum256(b)
	copy(h[:], s[:])
	return h
}

// Delta stream encoding: a sequence of ops, 'C' uvarint(first block) uvarint(count) copies
// blocks of the basis, 'L' uvarint(n) n bytes is literal data.
const (
	opCopy    = 'C'
	opLiteral = 'L'
)

// makeDelta encodes data as a delta against a basis described by s.
func makeDelta(data []byte, s *sigs) []byte {
	bs := int(s.BlockSize)
	nb := len(s.Weak)
	lastLen := int(s.Size) - (nb-1)*bs
	full := nb
	if lastLen != bs {
		full = nb - 1
	}
	index := make(map[uint32][]int32, full)
	for k := 0; k < full; k++ {
		index[s.Weak[k]] = append(index[s.Weak[k]], int32(k))
	}
	out := make([]byte, 0, 1024)
	copyStart, copyN := -1, 0
	flushCopy := func() {
		if copyN > 0 {
			out = append(out, opCopy)
			out = binary.AppendUvarint(out, uint64(copyStart))
			out = binary.AppendUvarint(out, uint64(copyN))
			copyStart, copyN = -1, 0
		}
	}
	emitCopy := func(k int) {
		if copyN > 0 && copyStart+copyN == k {
			copyN++
			return
		}
		flushCopy()
		copyStart, copyN = k, 1
	}
	emitLit := func(p []byte) {
		if len(p) == 0 {
			return
		}
		flushCopy()
		out = append(out, opLiteral)
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	n := len(data)
	i, lit := 0, 0
	var a, b uint32
	fresh := true
	for full > 0 && i+bs <= n {
		if fresh {
			w := weakSum(data[i : i+bs])
			a, b = w&0xffff, w>>16
			fresh = false
		}
		w := (a & 0xffff) | (b&0xffff)<<16
		match := -1
		if cands, ok := index[w]; ok {
			strong := crc32.Checksum(data[i:i+bs], castagnoli)
			next := copyStart + copyN
			for _, k := range cands {
				if s.Strong[k] == strong && (match < 0 || int(k) == next) {
					match = int(k)
				}
			}
		}
		if match >= 0 {
			emitLit(data[lit:i])
			emitCopy(match)
			i += bs
			lit = i
			fresh = true
			continue
		}
		if i+bs < n {
			xo, xi := uint32(data[i]), uint32(data[i+bs])
			a = a - xo + xi
			b = b - uint32(bs)*xo + a
		}
		i++
	}
	if lastLen != bs && lastLen > 0 && n-lit == lastLen {
		tail := data[lit:]
		if weakSum(tail) == s.Weak[nb-1] && crc32.Checksum(tail, castagnoli) == s.Strong[nb-1] {
			emitCopy(nb - 1)
			lit = n
		}
	}
	emitLit(data[lit:])
	flushCopy()
	return out
}

var errDelta = errors.New("sync: bad delta stream")

// applyDelta writes the file described by delta, reading copied blocks from basis.
func applyDelta(w io.Writer, basis io.ReaderAt, basisSize int64, bs uint32, delta []byte) error {
	d := dec{b: delta}
	buf := make([]byte, 0, 64<<10)
	for len(d.b) > 0 {
		switch d.u8() {
		case opCopy:
			first, cnt := d.uv(), d.uv()
			if d.err != nil {
				return fmt.Errorf("%w: %w", errDelta, d.err)
			}
			start := int64(first) * int64(bs)
			end := start + int64(cnt)*int64(bs)
			if first > uint64(basisSize) || cnt > uint64(basisSize) || start > basisSize {
				return fmt.Errorf("%w: copy beyond basis", errDelta)
			}
			end = min(end, basisSize)
			for off := start; off < end; {
				k := min(int64(cap(buf)), end-off)
				p := buf[:k]
				if _, err := basis.ReadAt(p, off); err != nil {
					return fmt.Errorf("read basis: %w", err)
				}
				if _, err := w.Write(p); err != nil {
					return err
				}
				off += k
			}
		case opLiteral:
			n := d.uv()
			if d.err != nil || n > uint64(len(d.b)) {
				return fmt.Errorf("%w: literal", errDelta)
			}
			if _, err := w.Write(d.b[:n]); err != nil {
				return err
			}
			d.b = d.b[n:]
		default:
			return fmt.Errorf("%w: op", errDelta)
		}
	}
	return nil
}
