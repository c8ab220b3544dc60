package vrrp

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// vridFilter is a classic BPF program for a raw IPv4 protocol-112 socket (which sees each
// datagram from its IP header on) that passes the adverts of one virtual router only: the
// VRID is byte 1 of the VRRP header (RFC 3768 section 5.3), after the IP header of IHL*4
// bytes.
//
// It is what lets a node run many groups on one interface (a vrrp.Unit): every raw socket of
// the host receives every VRRP datagram, so without it n groups wake n readers for each of
// the n adverts per interval, n² in all (255 groups: 65025 wake-ups a second), where the
// kernel now drops the other groups' adverts before they are queued. The price is that the
// Machine no longer counts adverts of other VRIDs (Status.Dropped["vrid"]), which on a
// shared LAN are other virtual routers' normal traffic.
func vridFilter(vrid uint8) ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadMemShift{Off: 0},          // X = 4*(IP[0]&0xf), the IP header length
		bpf.LoadIndirect{Off: 1, Size: 1}, // A = IP[X+1], the VRID
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(vrid), SkipTrue: 1},
		bpf.RetConstant{Val: 1 << 18}, // all of it (Receive refuses what cannot be an advert)
		bpf.RetConstant{Val: 0},       // dropped in the kernel
	})
}

// vridFilter6 is vridFilter for a raw IPv6 protocol-112 socket, which sees each datagram
// from the VRRP header on (an IPv6 raw socket is given no IP header): the VRID is byte 1.
func vridFilter6(vrid uint8) ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 1, Size: 1}, // A = the VRID
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(vrid), SkipTrue: 1},
		bpf.RetConstant{Val: 1 << 18},
		bpf.RetConstant{Val: 0},
	})
}

// filterVRID attaches vridFilter6 to the socket.
func (c *rawConn6) filterVRID(vrid uint8) error {
	prog, err := vridFilter6(vrid)
	if err != nil {
		return fmt.Errorf("vrrp: assembling the VRID filter: %w", err)
	}
	if err := c.pc.SetBPF(prog); err != nil {
		return fmt.Errorf("vrrp: attaching the VRID filter: %w", err)
	}
	return nil
}

// filterVRID attaches vridFilter to the socket.
func (c *rawConn) filterVRID(vrid uint8) error {
	prog, err := vridFilter(vrid)
	if err != nil {
		return fmt.Errorf("vrrp: assembling the VRID filter: %w", err)
	}
	if err := c.pc.SetBPF(prog); err != nil {
		return fmt.Errorf("vrrp: attaching the VRID filter: %w", err)
	}
	return nil
}
