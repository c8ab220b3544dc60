package sync

import (
	"bufio"
	"encoding"
	"errors"
	"fmt"
	"net"
	stdsync "sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// countConn counts the bytes that cross the TCP connection (TLS records included): the
// "bytes on the wire" of the run statistics. After the TLS handshake it also gathers the
// 16 KB TLS records into large reads and writes (buffered until peerConn.flush), which saves
// most system calls on a bulk transfer.
type countConn struct {
	net.Conn
	rx, tx atomic.Int64
	mu     stdsync.Mutex
	wb     *bufio.Writer
	rb     *bufio.Reader
}

func (c *countConn) Read(p []byte) (int, error) {
	var n int
	var err error
	if c.rb != nil {
		n, err = c.rb.Read(p)
	} else {
		n, err = c.Conn.Read(p)
	}
	c.rx.Add(int64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int
	var err error
	if c.wb != nil {
		n, err = c.wb.Write(p)
	} else {
		n, err = c.Conn.Write(p)
	}
	c.tx.Add(int64(n))
	return n, err
}

// buffer switches to buffered I/O (call after the handshake, before any concurrent use).
func (c *countConn) buffer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wb = bufio.NewWriterSize(c.Conn, 256<<10)
	c.rb = bufio.NewReaderSize(c.Conn, 256<<10)
}

func (c *countConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wb == nil {
		return nil
	}
	return c.wb.Flush()
}

// ErrPeer wraps an error the peer reported in an Error frame.
var ErrPeer = errors.New("sync: peer refused")

// peerConn frames messages over a TLS connection.
type peerConn struct {
	nc   net.Conn
	cnt  *countConn
	br   *bufio.Reader
	bw   *bufio.Writer
	buf  []byte
	zenc *zstd.Encoder
	zdec *zstd.Decoder
	zbuf []byte
	rbuf []byte // file read buffer of the sender
}

func newPeerConn(nc net.Conn, cnt *countConn) *peerConn {
	cnt.buffer()
	zenc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	zdec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxFrame*2))
	return &peerConn{nc: nc, cnt: cnt, br: bufio.NewReaderSize(nc, 256<<10), bw: bufio.NewWriterSize(nc, 256<<10), zenc: zenc, zdec: zdec}
}

func (c *peerConn) Close() error {
	c.zdec.Close()
	return c.nc.Close()
}

func (c *peerConn) sendRaw(t MsgType, p []byte) error {
	if len(p) > maxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(p))
	}
	var h [frameHeader]byte
	h[0] = byte(t)
	h[1], h[2], h[3], h[4] = byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
	if _, err := c.bw.Write(h[:]); err != nil {
		return err
	}
	_, err := c.bw.Write(p)
	return err
}

func (c *peerConn) send(t MsgType, m encoding.BinaryMarshaler) error {
	var p []byte
	if m != nil {
		var err error
		if p, err = m.MarshalBinary(); err != nil {
			return err
		}
	}
	return c.sendRaw(t, p)
}

// sendData sends one Data frame, compressed when the caller says it may pay and it does.
// It returns false when compression did not pay, so the caller stops trying for this file.
func (c *peerConn) sendData(p []byte, tryZstd bool) (bool, error) {
	if tryZstd && len(p) >= 512 {
		sample := p
		if len(sample) > 4096 {
			sample = sample[:4096]
		}
		c.zbuf = c.zenc.EncodeAll(sample, append(c.zbuf[:0], dataZstd))
		if len(c.zbuf)-1 < len(sample)*9/10 {
			if len(sample) != len(p) {
				c.zbuf = c.zenc.EncodeAll(p, append(c.zbuf[:0], dataZstd))
			}
			if len(c.zbuf)-1 < len(p) {
				return true, c.sendRaw(MsgData, c.zbuf)
			}
		}
		tryZstd = false
	}
	return tryZstd, c.sendParts(MsgData, []byte{0}, p)
}

// sendParts sends one frame whose payload is the concatenation of head and body, without
// copying body.
func (c *peerConn) sendParts(t MsgType, head, body []byte) error {
	n := len(head) + len(body)
	if n > maxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	h := [frameHeader]byte{byte(t), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	if _, err := c.bw.Write(h[:]); err != nil {
		return err
	}
	if _, err := c.bw.Write(head); err != nil {
		return err
	}
	_, err := c.bw.Write(body)
	return err
}

// dataPayload decodes a Data frame's payload into plain bytes (valid until the next recv).
func (c *peerConn) dataPayload(p []byte) ([]byte, error) {
	if len(p) < 1 || p[0]&^dataZstd != 0 {
		return nil, fmt.Errorf("%w: data flags", ErrBadValue)
	}
	if p[0] == 0 {
		return p[1:], nil
	}
	out, err := c.zdec.DecodeAll(p[1:], c.zbuf[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %w", ErrBadValue, err)
	}
	if len(out) > maxFrame {
		return nil, fmt.Errorf("%w: data chunk too large", ErrFrameTooLarge)
	}
	c.zbuf = out
	return out, nil
}

func (c *peerConn) flush() error {
	if err := c.bw.Flush(); err != nil {
		return err
	}
	return c.cnt.flush()
}

// recv reads one frame; the payload is valid until the next recv.
func (c *peerConn) recv() (MsgType, []byte, error) {
	return readFrame(c.br, &c.buf)
}

// expect flushes, reads one frame of type t into m; an Error frame becomes ErrPeer.
func (c *peerConn) expect(t MsgType, m encoding.BinaryUnmarshaler) error {
	if err := c.flush(); err != nil {
		return err
	}
	got, p, err := c.recv()
	if err != nil {
		return err
	}
	if got == MsgError {
		var e textMsg
		if err := e.UnmarshalBinary(p); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s", ErrPeer, e.Text)
	}
	if got != t {
		return fmt.Errorf("%w: got frame %d, want %d", ErrFrameType, got, t)
	}
	if m == nil {
		return nil
	}
	return m.UnmarshalBinary(p)
}
