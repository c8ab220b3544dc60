package vrrp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

const (
	etherTypeIPv6 = 0x86dd

	// icmpv6NeighborAdvert is the ICMPv6 type of a Neighbor Advertisement (RFC 4861 section
	// 4.4); ipProtoICMPv6 its IPv6 next header.
	icmpv6NeighborAdvert = 136
	ipProtoICMPv6        = 58

	// NA flags (RFC 4861 section 4.4), the first byte of the reserved word.
	naFlagRouter    = 0x80
	naFlagSolicited = 0x40
	naFlagOverride  = 0x20

	// naOptTargetLLA is the Target Link-Layer Address option (RFC 4861 section 4.6.1).
	naOptTargetLLA = 2

	naICMPLen  = 4 + 4 + 16 + 8 // type/code/checksum, flags, target, one 8-byte option
	naFrameLen = 14 + 40 + naICMPLen
)

// allNodes6 is the link-local all-nodes group an unsolicited NA goes to (RFC 4861 section
// 7.2.6), and allNodesMAC its Ethernet group address (RFC 2464 section 7).
var (
	allNodes6   = netip.MustParseAddr("ff02::1")
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
)

// newNAAnnouncer is the announcer of an IPv6 group: unsolicited Neighbor Advertisements,
// IPv6's gratuitous ARP (RFC 9568 section 6.4.2; RFC 4861 section 7.2.6), from src, this
// node's link-local address (an address of the sending interface, as section 7.2.6 wants), with
// the Router flag router (see buildNA).
//
// The frame is built here rather than sent through an ICMPv6 socket so that in virtual-MAC
// mode it leaves from the macvlan with the frame's source and the option both the virtual
// MAC, and without the kernel choosing another source address.
func newNAAnnouncer(ifi *net.Interface, src netip.Addr, router bool) (*frameAnnouncer, error) {
	return newFrameAnnouncer(ifi, etherTypeIPv6, "neighbor advertisement", allNodesMAC, naFrameLen, src.WithZone(""),
		func(b []byte, hw net.HardwareAddr, src, ip netip.Addr) error { return buildNA(b, hw, src, ip, router) })
}

// buildNA writes into b (at least naFrameLen bytes) the Ethernet frame of an unsolicited
// Neighbor Advertisement from src for target at hw (RFC 4861 sections 4.4 and 7.2.6): to
// ff02::1 (33:33:00:00:00:01), hop limit 255, Override set, Solicited clear, Router as given,
// and the Target Link-Layer Address option.
func buildNA(b []byte, hw net.HardwareAddr, src, target netip.Addr, router bool) error {
	if !target.Is6() || target.Is4In6() {
		return fmt.Errorf("vrrp: neighbor advertisement for %s: not an IPv6 address", target)
	}
	if len(hw) != 6 {
		return fmt.Errorf("vrrp: neighbor advertisement: hardware address %q is not 6 bytes", hw)
	}
	b = b[:naFrameLen]
	clear(b)
	copy(b[0:6], allNodesMAC)
	copy(b[6:12], hw)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)

	ip := b[14:54]
	ip[0] = 6 << 4                                 // version 6, traffic class 0, flow label 0
	binary.BigEndian.PutUint16(ip[4:6], naICMPLen) // payload length
	ip[6], ip[7] = ipProtoICMPv6, 255              // next header, hop limit
	s, d := src.As16(), allNodes6.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])

	na := b[54:]
	na[0] = icmpv6NeighborAdvert // code 0
	na[4] = naFlagOverride
	if router {
		na[4] |= naFlagRouter
	}
	t := target.As16()
	copy(na[8:24], t[:])
	na[24], na[25] = naOptTargetLLA, 1 // length in units of 8 bytes
	copy(na[26:32], hw)
	binary.BigEndian.PutUint16(na[2:4], ^icmpv6Sum(src, allNodes6, na))
	return nil
}

// icmpv6Sum is the folded one's complement sum of the ICMPv6 message msg from src to dst and
// of its IPv6 pseudo-header (RFC 8200 section 8.1, next header 58; RFC 4443 section 2.3): the
// checksum field is its complement, and a message that carries the right one sums to 0xffff.
func icmpv6Sum(src, dst netip.Addr, msg []byte) uint16 {
	var ph [40]byte
	s, d := src.As16(), dst.As16()
	copy(ph[0:16], s[:])
	copy(ph[16:32], d[:])
	binary.BigEndian.PutUint32(ph[32:36], uint32(len(msg)))
	ph[39] = ipProtoICMPv6
	return fold(addWords(addWords(0, ph[:]), msg))
}
