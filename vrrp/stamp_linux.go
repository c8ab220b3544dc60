package vrrp

import (
	"encoding/binary"
	"fmt"
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stampSpace is the control-message room a receive time (SCM_TIMESTAMPNS) takes.
var stampSpace = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// enableStamps asks the kernel to stamp every datagram c receives with the time it arrived
// (SO_TIMESTAMPNS, socket(7)), so that the Router dates an advert from its arrival rather than
// from when the reader goroutine got to run, which on a loaded machine is milliseconds later.
func enableStamps(c net.PacketConn) error {
	if err := setSockoptInt(c, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("vrrp: enabling SO_TIMESTAMPNS: %w", err)
	}
	return nil
}

// kernelStamp returns the receive time in the SCM_TIMESTAMPNS message of a recvmsg's control
// data: a CLOCK_REALTIME reading (no monotonic one; see [arrival]), or zero when there is none.
func kernelStamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS {
			continue
		}
		// struct timespec: two native longs, 8 bytes each on 64-bit Linux, 4 on 32-bit.
		switch w := int(unsafe.Sizeof(unix.Timespec{}.Sec)); {
		case w == 8 && len(m.Data) >= 16:
			sec, nsec := binary.NativeEndian.Uint64(m.Data), binary.NativeEndian.Uint64(m.Data[8:])
			return time.Unix(int64(sec), int64(nsec))
		case w == 4 && len(m.Data) >= 8:
			sec, nsec := binary.NativeEndian.Uint32(m.Data), binary.NativeEndian.Uint32(m.Data[4:])
			return time.Unix(int64(int32(sec)), int64(int32(nsec)))
		}
	}
	return time.Time{}
}
