package vrrp

import (
	"encoding/binary"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/redundantd/redundantd/testlab/sockmsg"
)

// stampMsg builds control data holding one message of the given level and type whose data is
// a struct timespec for at, truncated to n bytes when n >= 0.
func stampMsg(level, typ int32, at time.Time, n int) []byte {
	ts := unix.NsecToTimespec(at.UnixNano())
	data := make([]byte, unsafe.Sizeof(ts))
	if len(data) == 16 {
		binary.NativeEndian.PutUint64(data, uint64(ts.Sec))
		binary.NativeEndian.PutUint64(data[8:], uint64(ts.Nsec))
	} else {
		binary.NativeEndian.PutUint32(data, uint32(ts.Sec))
		binary.NativeEndian.PutUint32(data[4:], uint32(ts.Nsec))
	}
	if n >= 0 {
		data = data[:n]
	}
	return sockmsg.Build(level, typ, data)
}

func TestKernelStamp(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 2, 3, 456789012, time.UTC)
	pktinfo := stampMsg(unix.IPPROTO_IP, unix.IP_PKTINFO, time.Unix(0, 0), -1) // any other message
	for _, tc := range []struct {
		name string
		oob  []byte
		want time.Time
	}{
		{"stamp", stampMsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, at, -1), at},
		{"after another message", append(pktinfo, stampMsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, at, -1)...), at},
		{"none", pktinfo, time.Time{}},
		{"no control data", nil, time.Time{}},
		{"truncated stamp", stampMsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, at, 4), time.Time{}},
		{"other level", stampMsg(unix.IPPROTO_IP, unix.SCM_TIMESTAMPNS, at, -1), time.Time{}},
		{"garbage", []byte{1, 2, 3}, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := kernelStamp(tc.oob); !got.Equal(tc.want) {
				t.Errorf("kernelStamp = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStripIPv4Header(t *testing.T) {
	hdr := func(ihl byte, payload ...byte) []byte {
		b := make([]byte, int(ihl)*4)
		b[0] = 0x40 | ihl
		return append(b, payload...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want []byte // nil: refused
	}{
		{"plain header", hdr(5, 0x31, 0x01), []byte{0x31, 0x01}},
		{"with options", hdr(6, 0x31), []byte{0x31}},
		{"header only", hdr(5), []byte{}},
		{"shorter than a header", make([]byte, 19), nil},
		{"IHL below 5", append([]byte{0x44}, make([]byte, 23)...), nil},
		{"IHL past the end", hdr(15)[:40], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), tc.in...)
			n, ok := stripIPv4Header(b)
			if ok != (tc.want != nil) {
				t.Fatalf("ok = %v, want %v", ok, tc.want != nil)
			}
			if ok && string(b[:n]) != string(tc.want) {
				t.Errorf("payload % x, want % x", b[:n], tc.want)
			}
		})
	}
}
