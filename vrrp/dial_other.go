//go:build !linux

package vrrp

import (
	"errors"
	"runtime"
)

// ErrUnsupported is returned by Dial on systems other than Linux: the production I/O needs
// netlink, a raw protocol-112 socket, AF_PACKET and a timerfd. The wire format, the Machine
// and New (with caller-supplied I/O) work everywhere.
var ErrUnsupported = errors.New("vrrp: Dial needs Linux (netlink, raw sockets, AF_PACKET)")

// Dial reports ErrUnsupported on this system.
func Dial(cfg Config) (*Router, error) {
	return nil, errors.Join(ErrUnsupported, errors.New("running on "+runtime.GOOS))
}
