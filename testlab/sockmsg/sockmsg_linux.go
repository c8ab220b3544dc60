// Package sockmsg builds socket control messages (cmsg(3)) as the kernel lays them out, for
// tests of code that parses the control data of a recvmsg. It imports nothing of the product,
// so the product packages' own tests can use it.
package sockmsg

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Build returns one control message of the given level and type carrying data, padded to
// CMSG_SPACE as the kernel pads it.
func Build(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}
