package sync

import (
	"fmt"
	"io"
	"os"
)

// What both sides use to move a file's content: the source pushing and the replica answering
// a pull send whole files (sendWhole) and read stable snapshots (readStable); both receive
// Data frames up to FileEnd (recvData).

// sendWhole streams f as Data frames and closes it with FileEnd when the file is the one the
// scan saw (size and mtime) and did not change while it was read (same size, mtime, ctime and
// inode before and after), FileAbort otherwise. FileEnd carries want, the hash the scan
// computed; when want is zero (a new file, hashed while sent) the hash and block sums are
// computed here. The receiver hashes what it got and rejects a mismatch, so a change the stat
// fields miss is still caught there. onChunk, when not nil (tests, Node.sendChunkHook), runs
// after each chunk is read. It returns the bytes read, the hash and the block sums.
func sendWhole(pc *peerConn, f *os.File, m *Meta, tryZstd bool, onChunk func(name string)) (int64, Hash, *sigs, error) {
	want := m.Hash
	before, err := f.Stat()
	if err != nil {
		return 0, want, nil, pc.send(MsgFileAbort, &textMsg{Text: err.Error()})
	}
	var h *contentHasher
	if want == (Hash{}) {
		h = newContentHasher(before.Size())
	}
	if pc.rbuf == nil {
		pc.rbuf = make([]byte, chunkSize)
	}
	buf := pc.rbuf
	var total int64
	for {
		k, rerr := io.ReadFull(f, buf)
		if k > 0 {
			total += int64(k)
			if h != nil {
				h.Write(buf[:k])
			}
			if onChunk != nil {
				onChunk(f.Name())
			}
			if tryZstd, err = pc.sendData(buf[:k], tryZstd); err != nil {
				return total, want, nil, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return total, want, nil, pc.send(MsgFileAbort, &textMsg{Text: rerr.Error()})
		}
	}
	after, err := f.Stat()
	if err != nil || !sameStat(before, after) || total != after.Size() ||
		(m.Kind == KindFile && (before.Size() != m.Size || before.ModTime().UnixNano() != m.Mtime)) {
		return total, want, nil, pc.send(MsgFileAbort, &textMsg{Text: "changed while read"})
	}
	var sg *sigs
	if h != nil {
		want, sg = h.finish()
	}
	return total, want, sg, pc.send(MsgFileEnd, &fileEndMsg{Hash: want})
}

// recvData reads Data frames up to FileEnd or FileAbort, writing them to w. A write error is
// remembered (and returned as werr) while the frames are still consumed, so the stream stays
// in step.
func recvData(pc *peerConn, w io.Writer, h *contentHasher) (end *fileEndMsg, werr error, err error) {
	for {
		t, p, err := pc.recv()
		if err != nil {
			return nil, werr, err
		}
		switch t {
		case MsgData:
			b, err := pc.dataPayload(p)
			if err != nil {
				return nil, werr, err
			}
			if werr == nil {
				if _, e := w.Write(b); e != nil {
					werr = e
				} else if h != nil {
					h.Write(b)
				}
			}
		case MsgFileEnd:
			var e fileEndMsg
			if err := e.UnmarshalBinary(p); err != nil {
				return nil, werr, err
			}
			return &e, werr, nil
		case MsgFileAbort:
			var e textMsg
			if err := e.UnmarshalBinary(p); err != nil {
				return nil, werr, err
			}
			return nil, werr, nil
		default:
			return nil, werr, fmt.Errorf("%w: %d inside a file", ErrFrameType, t)
		}
	}
}

// readStable reads a file that must still be the one the scan hashed (size and mtime as in m)
// and must not change while read. The replica verifies the content hash of what it rebuilds.
func readStable(r *os.Root, rel string, m *Meta) ([]byte, bool) {
	f, err := r.Open(rel)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil || before.Size() != m.Size || before.ModTime().UnixNano() != m.Mtime {
		return nil, false
	}
	data := make([]byte, before.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, false
	}
	after, err := f.Stat()
	if err != nil || !sameStat(before, after) {
		return nil, false
	}
	return data, true
}
