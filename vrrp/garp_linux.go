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

// arpAnnouncer sends gratuitous ARP through an AF_PACKET socket bound to one interface. It is
// send-only: a BPF program that accepts nothing keeps the kernel from queueing the segment's
// ARP traffic on a socket that is never read.
type arpAnnouncer struct {
	conn  *packet.Conn
	hw    net.HardwareAddr
	frame [garpFrameLen]byte
	dst   packet.Addr
}

var _ Announcer = (*arpAnnouncer)(nil)

// newARPAnnouncer opens the packet socket on ifi; frames carry ifi's hardware address as the
// sender, which in virtual-MAC mode is the macvlan's 00-00-5E-00-01-{VRID}.
func newARPAnnouncer(ifi *net.Interface) (*arpAnnouncer, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("vrrp: gratuitous ARP on %s: not an Ethernet interface (hardware address %q)", ifi.Name, ifi.HardwareAddr)
	}
	dropAll, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return nil, fmt.Errorf("vrrp: assembling ARP socket filter: %w", err)
	}
	c, err := packet.Listen(ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: dropAll})
	if err != nil {
		return nil, fmt.Errorf("vrrp: opening ARP socket on %s: %w", ifi.Name, err)
	}
	return &arpAnnouncer{
		conn: c,
		hw:   append(net.HardwareAddr(nil), ifi.HardwareAddr...),
		dst:  packet.Addr{HardwareAddr: broadcastMAC},
	}, nil
}

// Announce broadcasts one gratuitous ARP per IPv4 address, so that hosts and switches on the
// segment point the address at this node's (or the virtual) MAC address at once.
func (a *arpAnnouncer) Announce(ips []netip.Addr) error {
	var errs []error
	for _, ip := range ips {
		if err := buildGARP(a.frame[:], a.hw, ip); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := a.conn.WriteTo(a.frame[:], &a.dst); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: gratuitous ARP for %s: %w", ip, err))
		}
	}
	return errors.Join(errs...)
}

// rebind moves the announcer to a new socket on ifi (a recreated interface), closing its own,
// which was bound to the vanished index. It must run in Dial's network namespace.
func (a *arpAnnouncer) rebind(ifi *net.Interface) error {
	n, err := newARPAnnouncer(ifi)
	if err != nil {
		return err
	}
	a.conn.Close()
	a.conn, a.hw = n.conn, n.hw
	return nil
}

// Close closes the packet socket.
func (a *arpAnnouncer) Close() error { return a.conn.Close() }

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
