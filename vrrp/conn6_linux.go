package vrrp

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// rawConn6 is the production [Conn] of an IPv6 group: one raw IPv6 socket for next header
// 112 (RFC 9568 section 5.1.2).
//
// Adverts go to ff02::12 (or to each unicast peer) with hop limit 255 (section 5.1.2.3:
// receivers discard anything else, so no router can have forwarded them), from the
// interface's link-local address (section 5.1.2.1) and out of a fixed interface, both through
// IPV6_PKTINFO. Receive reports the hop limit, the arrival interface and the destination of
// each datagram (IPV6_RECVHOPLIMIT, IPV6_RECVPKTINFO); the Machine checks the hop limit.
//
// The kernel computes no checksum for next header 112 unless told to (IPV6_CHECKSUM), and it
// is left untold: the VRRPv3 checksum covers the IPv6 pseudo-header (RFC 9568 section
// 5.2.8), which the Router marshals for each destination ([PseudoHeader]); on receive the
// Machine verifies it and counts a bad one, which a kernel check would drop unseen.
//
// In virtual-MAC mode the send interface is the macvlan, so the frames leave from
// 00-00-5E-00-02-{VRID}, with the parent's link-local address as source, which the macvlan
// does not hold (IPV6_FREEBIND; see vmacLink); reception stays on the parent.
type rawConn6 struct {
	pc *ipv6.PacketConn
	ip *net.IPConn // pc's socket, read with recvmsg for the kernel's receive time

	recvIndex atomic.Int32 // only datagrams that arrived on this interface are returned
	multicast bool
	cm        ipv6.ControlMessage
	buf       []byte
	oob       []byte
}

var _ Conn = (*rawConn6)(nil)

// recvFlags6 are the control messages an IPv6 advert is received with.
const recvFlags6 = ipv6.FlagHopLimit | ipv6.FlagInterface | ipv6.FlagDst

// newRawConn6 opens the socket in the calling thread's network namespace. cc.primary is the
// link-local source address.
func newRawConn6(cc connConfig) (_ *rawConn6, err error) {
	if !cc.primary.Is6() || !cc.primary.IsLinkLocalUnicast() {
		return nil, fmt.Errorf("vrrp: IPv6 adverts need a link-local source address, not %s (RFC 9568 section 5.1.2.1)", cc.primary)
	}
	c, err := net.ListenPacket(fmt.Sprintf("ip6:%d", ipProtoVRRP), "::")
	if err != nil {
		return nil, fmt.Errorf("vrrp: opening raw IPv6 socket for next header %d: %w", ipProtoVRRP, err)
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	pc := ipv6.NewPacketConn(c)
	if err := pc.SetControlMessage(recvFlags6, true); err != nil {
		return nil, fmt.Errorf("vrrp: enabling IPv6 control messages: %w", err)
	}
	for _, set := range []struct {
		what string
		fn   func() error
	}{
		{"unicast hop limit 255", func() error { return pc.SetHopLimit(255) }},
		{"multicast hop limit 255", func() error { return pc.SetMulticastHopLimit(255) }},
		{"traffic class", func() error { return pc.SetTrafficClass(tosInternetControl) }},
		{"no multicast loopback", func() error { return pc.SetMulticastLoopback(false) }},
		{"multicast interface " + cc.send.Name, func() error { return pc.SetMulticastInterface(cc.send) }},
		// As for IPv4: only the groups this socket joined, not every group of the host.
		{"no IPV6_MULTICAST_ALL", func() error { return setSockoptInt(c, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0) }},
		{"receive times", func() error { return enableStamps(c) }},
	} {
		if err := set.fn(); err != nil {
			return nil, fmt.Errorf("vrrp: setting %s: %w", set.what, err)
		}
	}
	if cc.freebind {
		// The kernel checks that a link-local source given with IPV6_PKTINFO is an address
		// of the sending interface, unless the socket may use a non-local one.
		if err := setSockoptInt(c, unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1); err != nil {
			return nil, fmt.Errorf("vrrp: setting IPV6_FREEBIND: %w", err)
		}
	}
	rc := &rawConn6{
		pc:  pc,
		ip:  c.(*net.IPConn),
		cm:  ipv6.ControlMessage{Src: cc.primary.AsSlice(), IfIndex: cc.send.Index, HopLimit: 255},
		buf: make([]byte, maxAdvertLen+1),
		oob: append(ipv6.NewControlMessage(recvFlags6), make([]byte, stampSpace)...),
	}
	rc.recvIndex.Store(int32(cc.recv.Index))
	if len(cc.peers) == 0 {
		rc.multicast = true
		if err := pc.JoinGroup(cc.recv, &net.IPAddr{IP: vrrpGroup6.AsSlice()}); err != nil {
			return nil, fmt.Errorf("vrrp: joining %s on %s: %w", vrrpGroup6, cc.recv.Name, err)
		}
	}
	return rc, nil
}

// Send transmits one advert to dst: ff02::12 (link-local scope, so out of the interface
// IPV6_PKTINFO names), or in unicast mode one peer. The Router has written the checksum for
// dst's pseudo-header.
func (c *rawConn6) Send(payload []byte, dst netip.Addr) error {
	if _, err := c.pc.WriteTo(payload, &c.cm, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("vrrp: sending advert to %s: %w", dst, err)
	}
	return nil
}

// Receive blocks until an advert arrives on the configured interface and returns it with a
// copy of the IP payload and its hop limit in Inbound.TTL. Datagrams for other interfaces are
// skipped silently. Receive is not safe for concurrent use; the Router calls it from one
// reader.
func (c *rawConn6) Receive() (Inbound, error) {
	return receiveOn(c.buf, &c.recvIndex, func(b []byte) (int, recvMeta, net.Addr, error) {
		// A raw IPv6 socket returns the payload only: no header to strip.
		n, oobn, _, src, err := c.ip.ReadMsgIP(b, c.oob)
		if err != nil {
			return 0, recvMeta{}, nil, err
		}
		var cm ipv6.ControlMessage
		if cm.Parse(c.oob[:oobn]) != nil {
			return n, recvMeta{}, src, nil
		}
		meta := recvMeta{ok: true, ifIndex: cm.IfIndex, ttl: cm.HopLimit, dst: cm.Dst, arrived: kernelStamp(c.oob[:oobn])}
		return n, meta, src, nil
	})
}

// rebind moves the socket to a recreated interface, as [rawConn.rebind] does for IPv4.
func (c *rawConn6) rebind(recv, send *net.Interface) error {
	if err := rebindGroup(c.pc, c.multicast, vrrpGroup6, recv, send); err != nil {
		return err
	}
	c.cm.IfIndex = send.Index
	c.recvIndex.Store(int32(recv.Index))
	return nil
}

// setSource makes adverts leave from src, the interface's link-local address now (see
// [linkVerdict]).
func (c *rawConn6) setSource(src netip.Addr) { c.cm.Src = src.WithZone("").AsSlice() }

// Close closes the socket; a blocked Receive returns an error wrapping net.ErrClosed.
func (c *rawConn6) Close() error { return c.pc.Close() }

// setSockoptInt sets an integer socket option on c's descriptor.
func setSockoptInt(c net.PacketConn, level, opt, value int) error {
	sc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, value) }); err != nil {
		return err
	}
	return serr
}
