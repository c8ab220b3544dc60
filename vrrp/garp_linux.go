package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
)

const (
	etherTypeARP = 0x0806
	etherTypeIP  = 0x0800

	// garpFrameLen is the Ethernet minimum frame length without the FCS: a 14-byte header and a
	// 28-byte ARP body padded to 60 bytes, so that drivers that do not pad short frames still
	// put a valid frame on the wire.
	garpFrameLen = 60
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// frameAnnouncer is the production [Announcer]: it sends one hand-built Ethernet frame per
// address (build writes it) through an AF_PACKET socket bound to one interface, the gratuitous
// ARP of an IPv4 group ([newARPAnnouncer]) or the unsolicited Neighbor Advertisement of an
// IPv6 one ([newNAAnnouncer]). It is send-only: a BPF program that accepts nothing keeps the
// kernel from queueing the segment's traffic on a socket that is never read.
type frameAnnouncer struct {
	conn      *packet.Conn
	hw        net.HardwareAddr
	frame     []byte
	dst       packet.Addr
	etherType int
	what      string
	src       netip.Addr // the IP source a build puts in the frame, if it has one
	build     func(frame []byte, hw net.HardwareAddr, src, ip netip.Addr) error
}

var _ Announcer = (*frameAnnouncer)(nil)

// newFrameAnnouncer opens the packet socket on ifi; frames of frameLen bytes go to dst and
// carry ifi's hardware address as the sender, which in virtual-MAC mode is the macvlan's
// virtual MAC.
func newFrameAnnouncer(ifi *net.Interface, etherType int, what string, dst net.HardwareAddr, frameLen int,
	src netip.Addr, build func(frame []byte, hw net.HardwareAddr, src, ip netip.Addr) error) (*frameAnnouncer, error) {
	c, err := listenSendOnly(ifi, etherType, what)
	if err != nil {
		return nil, err
	}
	return &frameAnnouncer{
		conn:      c,
		hw:        append(net.HardwareAddr(nil), ifi.HardwareAddr...),
		frame:     make([]byte, frameLen),
		dst:       packet.Addr{HardwareAddr: dst},
		etherType: etherType,
		what:      what,
		src:       src,
		build:     build,
	}, nil
}

// newARPAnnouncer is the announcer of an IPv4 group: gratuitous ARP, broadcast.
func newARPAnnouncer(ifi *net.Interface) (*frameAnnouncer, error) {
	return newFrameAnnouncer(ifi, etherTypeARP, "gratuitous ARP", broadcastMAC, garpFrameLen, netip.Addr{},
		func(b []byte, hw net.HardwareAddr, _, ip netip.Addr) error { return buildGARP(b, hw, ip) })
}

// listenSendOnly opens a send-only AF_PACKET socket for etherType on ifi, an Ethernet
// interface (see frameAnnouncer).
func listenSendOnly(ifi *net.Interface, etherType int, what string) (*packet.Conn, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("vrrp: %s on %s: not an Ethernet interface (hardware address %q)", what, ifi.Name, ifi.HardwareAddr)
	}
	dropAll, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return nil, fmt.Errorf("vrrp: assembling the %s socket filter: %w", what, err)
	}
	c, err := packet.Listen(ifi, packet.Raw, etherType, &packet.Config{Filter: dropAll})
	if err != nil {
		return nil, fmt.Errorf("vrrp: opening the %s socket on %s: %w", what, ifi.Name, err)
	}
	return c, nil
}

// Announce sends one frame per address, so that hosts and switches on the segment point the
// address at this node's (or the virtual) MAC address at once.
func (a *frameAnnouncer) Announce(ips []netip.Addr) error {
	var errs []error
	for _, ip := range ips {
		if err := a.build(a.frame, a.hw, a.src, ip); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := a.conn.WriteTo(a.frame, &a.dst); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: %s for %s: %w", a.what, ip, err))
		}
	}
	return errors.Join(errs...)
}

// rebind moves the announcer to a new socket on ifi (a recreated interface), closing its own,
// which was bound to the vanished index. It must run in Dial's network namespace.
func (a *frameAnnouncer) rebind(ifi *net.Interface) error {
	c, err := listenSendOnly(ifi, a.etherType, a.what)
	if err != nil {
		return err
	}
	a.conn.Close()
	a.conn, a.hw = c, append(net.HardwareAddr(nil), ifi.HardwareAddr...)
	return nil
}

// setSource makes the next frames carry src as their IP source (a Neighbor Advertisement's;
// a gratuitous ARP has none).
func (a *frameAnnouncer) setSource(src netip.Addr) { a.src = src.WithZone("") }

// Close closes the packet socket.
func (a *frameAnnouncer) Close() error { return a.conn.Close() }

// buildGARP writes into b (at least garpFrameLen bytes) a broadcast ARP request announcing ip
// at hw: sender and target protocol address are both ip and the target hardware address is
// zero, the "ARP Announcement" of RFC 5227 section 3. A request rather than a reply is used
// because every stack updates an existing cache entry from it, including those that ignore
// unsolicited replies.
func buildGARP(b []byte, hw net.HardwareAddr, ip netip.Addr) error {
	if !ip.Is4() {
		return fmt.Errorf("vrrp: gratuitous ARP for %s: not an IPv4 address", ip)
	}
	if len(hw) != 6 {
		return fmt.Errorf("vrrp: gratuitous ARP: hardware address %q is not 6 bytes", hw)
	}
	b = b[:garpFrameLen]
	clear(b)
	copy(b[0:6], broadcastMAC)
	copy(b[6:12], hw)
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	arp := b[14:]
	binary.BigEndian.PutUint16(arp[0:2], 1)           // hardware type: Ethernet
	binary.BigEndian.PutUint16(arp[2:4], etherTypeIP) // protocol type: IPv4
	arp[4], arp[5] = 6, 4                             // address lengths
	binary.BigEndian.PutUint16(arp[6:8], 1)           // operation: request
	copy(arp[8:14], hw)                               // sender hardware address
	a4 := ip.As4()
	copy(arp[14:18], a4[:]) // sender protocol address
	// arp[18:24], the target hardware address, stays zero.
	copy(arp[24:28], a4[:]) // target protocol address
	return nil
}
