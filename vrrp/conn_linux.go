package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

const (
	// tosInternetControl is IP precedence 6 (DSCP CS6), the class of routing-protocol traffic;
	// keepalived marks its adverts the same way so that queueing switches keep them ahead of
	// bulk traffic.
	tosInternetControl = 0xc0

	// maxAdvertLen bounds a received IP payload. A VRRPv2 advert with the maximum 255 addresses
	// is 8+4*255+8 = 1036 bytes; anything longer than an Ethernet MTU cannot be ours.
	maxAdvertLen = 1500

	// maxIPv4HeaderLen is the longest IPv4 header (IHL 15), which a raw IPv4 socket's recvmsg
	// returns ahead of the payload.
	maxIPv4HeaderLen = 60

	// recvFlags4 are the control messages an IPv4 advert is received with.
	recvFlags4 = ipv4.FlagTTL | ipv4.FlagInterface | ipv4.FlagDst
)

// rawConn is the production [Conn]: one raw IPv4 socket for protocol 112.
//
// Adverts are sent with TTL 255 (RFC 3768 section 5.2.3: receivers discard anything else, so
// no router can have forwarded them), with the Primary address as IP source and out of a fixed
// interface, both through IP_PKTINFO. In virtual-MAC mode the send interface is the macvlan,
// so the frame carries 00-00-5E-00-01-{VRID}, while reception stays on the parent.
type rawConn struct {
	pc *ipv4.PacketConn
	ip *net.IPConn // pc's socket, read with recvmsg for the kernel's receive time

	recvIndex atomic.Int32 // only datagrams that arrived on this interface are returned
	multicast bool
	cm        ipv4.ControlMessage
	buf       []byte
	oob       []byte
}

var _ Conn = (*rawConn)(nil)

// connConfig is what newRawConn needs from a Config, resolved to interfaces.
type connConfig struct {
	recv    *net.Interface // where adverts arrive: the configured interface
	send    *net.Interface // where adverts leave: the interface, or the macvlan
	primary netip.Addr
	peers   []netip.Addr // unicast mode when non-empty
	// freebind: send from primary though send does not hold it (IPV6_FREEBIND; an IPv6
	// group's macvlan in virtual-MAC mode, which holds no address of its own).
	freebind bool
}

// newRawConn opens the socket in the calling thread's network namespace.
func newRawConn(cc connConfig) (_ *rawConn, err error) {
	c, err := net.ListenPacket(fmt.Sprintf("ip4:%d", ipProtoVRRP), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("vrrp: opening raw socket for IP protocol %d: %w", ipProtoVRRP, err)
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	pc := ipv4.NewPacketConn(c)
	if err := pc.SetControlMessage(recvFlags4, true); err != nil {
		return nil, fmt.Errorf("vrrp: enabling control messages: %w", err)
	}
	if err := pc.SetTTL(255); err != nil {
		return nil, fmt.Errorf("vrrp: setting unicast TTL 255: %w", err)
	}
	if err := pc.SetTOS(tosInternetControl); err != nil {
		return nil, fmt.Errorf("vrrp: setting TOS: %w", err)
	}
	if err := pc.SetMulticastTTL(255); err != nil {
		return nil, fmt.Errorf("vrrp: setting multicast TTL 255: %w", err)
	}
	if err := pc.SetMulticastLoopback(false); err != nil {
		return nil, fmt.Errorf("vrrp: disabling multicast loopback: %w", err)
	}
	if err := pc.SetMulticastInterface(cc.send); err != nil {
		return nil, fmt.Errorf("vrrp: setting multicast interface %s: %w", cc.send.Name, err)
	}
	if err := enableStamps(c); err != nil {
		return nil, err
	}
	// Linux delivers to a socket the multicast of every group any socket of the host joined,
	// unless IP_MULTICAST_ALL is off: keep to our own membership (none in unicast mode).
	if err := disableMulticastAll(c); err != nil {
		return nil, fmt.Errorf("vrrp: disabling IP_MULTICAST_ALL: %w", err)
	}
	rc := &rawConn{
		pc:  pc,
		ip:  c.(*net.IPConn),
		cm:  ipv4.ControlMessage{Src: cc.primary.AsSlice(), IfIndex: cc.send.Index},
		buf: make([]byte, maxIPv4HeaderLen+maxAdvertLen+1),
		oob: append(ipv4.NewControlMessage(recvFlags4), make([]byte, stampSpace)...),
	}
	rc.recvIndex.Store(int32(cc.recv.Index))
	if len(cc.peers) == 0 {
		rc.multicast = true
		group := &net.IPAddr{IP: vrrpGroup.AsSlice()}
		if err := pc.JoinGroup(cc.recv, group); err != nil {
			return nil, fmt.Errorf("vrrp: joining %s on %s: %w", vrrpGroup, cc.recv.Name, err)
		}
	}
	return rc, nil
}

// Send transmits one advert to dst: 224.0.0.18, or in unicast mode one peer.
func (c *rawConn) Send(payload []byte, dst netip.Addr) error {
	if _, err := c.pc.WriteTo(payload, &c.cm, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("vrrp: sending advert to %s: %w", dst, err)
	}
	return nil
}

// setSource makes adverts leave from src, the Primary address now (see [linkVerdict]).
func (c *rawConn) setSource(src netip.Addr) { c.cm.Src = src.AsSlice() }

// Receive blocks until an advert arrives on the configured interface and returns it with a
// copy of the IP payload. Datagrams for other
// interfaces are skipped silently: one raw socket sees the VRRP traffic of every interface in
// the namespace. Receive is not safe for concurrent use; the Router calls it from one reader.
func (c *rawConn) Receive() (Inbound, error) {
	return receiveOn(c.buf, &c.recvIndex, func(b []byte) (int, recvMeta, net.Addr, error) {
		n, oobn, _, src, err := c.ip.ReadMsgIP(b, c.oob)
		if err != nil {
			return 0, recvMeta{}, nil, err
		}
		n, ok := stripIPv4Header(b[:n])
		var cm ipv4.ControlMessage
		if !ok || cm.Parse(c.oob[:oobn]) != nil {
			return n, recvMeta{}, src, nil
		}
		meta := recvMeta{ok: true, ifIndex: cm.IfIndex, ttl: cm.TTL, dst: cm.Dst, arrived: kernelStamp(c.oob[:oobn])}
		return n, meta, src, nil
	})
}

// stripIPv4Header moves the payload of the IPv4 packet in b to the front of b and returns its
// length, or false when b is too short for the header it announces. A raw IPv4 socket's
// recvmsg returns the header; ipv4.PacketConn's ReadFrom, which strips it, has no room for the
// receive time's control message.
func stripIPv4Header(b []byte) (int, bool) {
	if len(b) < ipv4.HeaderLen {
		return 0, false
	}
	hl := int(b[0]&0x0f) << 2
	if hl < ipv4.HeaderLen || hl > len(b) {
		return 0, false
	}
	return copy(b, b[hl:]), true
}

// recvMeta is what receiveOn needs of a datagram's control message (IPv4 or IPv6).
type recvMeta struct {
	ok      bool // a control message came
	ifIndex int
	ttl     int // IPv4 TTL or IPv6 hop limit
	dst     net.IP
	arrived time.Time // the kernel's receive time; zero if none came
}

// receiveOn reads datagrams into buf with read until one arrives on the interface recvIndex
// names, and returns it with a copy of the payload. Datagrams for other interfaces, without a
// control message, too long to be an advert or without an IP source are skipped: one raw
// socket sees the VRRP traffic of every interface in the namespace.
func receiveOn(buf []byte, recvIndex *atomic.Int32, read func([]byte) (int, recvMeta, net.Addr, error)) (Inbound, error) {
	for {
		n, cm, src, err := read(buf)
		if err != nil {
			return Inbound{}, err
		}
		if !cm.ok || cm.ifIndex != int(recvIndex.Load()) || n > maxAdvertLen {
			continue
		}
		ipa, ok := src.(*net.IPAddr)
		if !ok {
			continue
		}
		from, ok := netip.AddrFromSlice(ipa.IP)
		if !ok {
			continue
		}
		// In unicast mode a source that is not a peer is passed on all the same: the Machine
		// drops it and counts it under "peer", which is what an operator chasing a
		// misconfigured peer list needs to see.
		dst, _ := netip.AddrFromSlice(cm.dst)
		return Inbound{
			Src:     from.Unmap(),
			Dst:     dst.Unmap(),
			TTL:     cm.ttl,
			Payload: slices.Clone(buf[:n]),
			Arrived: cm.arrived,
		}, nil
	}
}

func disableMulticastAll(c net.PacketConn) error {
	return setSockoptInt(c, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
}

// rebind moves the socket to a recreated interface (same name, new index): adverts are
// accepted from recv and sent out of send, and in multicast mode the group is joined on recv
// (the kernel dropped the membership with the old interface). It must not run concurrently
// with Send; Receive may be blocked meanwhile.
func (c *rawConn) rebind(recv, send *net.Interface) error {
	if err := rebindGroup(c.pc, c.multicast, vrrpGroup, recv, send); err != nil {
		return err
	}
	c.cm.IfIndex = send.Index
	c.recvIndex.Store(int32(recv.Index))
	return nil
}

// groupSocket is what ipv4.PacketConn and ipv6.PacketConn share for multicast membership.
type groupSocket interface {
	SetMulticastInterface(*net.Interface) error
	JoinGroup(*net.Interface, net.Addr) error
}

// rebindGroup points a multicast-mode socket at a recreated interface: multicast sent out of
// send and group joined on recv (the kernel dropped the membership with the old interface).
func rebindGroup(pc groupSocket, multicast bool, group netip.Addr, recv, send *net.Interface) error {
	if !multicast {
		return nil
	}
	if err := pc.SetMulticastInterface(send); err != nil {
		return fmt.Errorf("vrrp: setting multicast interface %s: %w", send.Name, err)
	}
	if err := pc.JoinGroup(recv, &net.IPAddr{IP: group.AsSlice()}); err != nil && !errors.Is(err, unix.EADDRINUSE) {
		return fmt.Errorf("vrrp: joining %s on %s: %w", group, recv.Name, err)
	}
	return nil
}

// Close closes the socket; a blocked Receive returns an error wrapping net.ErrClosed.
func (c *rawConn) Close() error { return c.pc.Close() }
