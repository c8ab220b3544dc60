package testlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/redundantd/redundantd/testlab/labns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Advert is one VRRP advertisement seen on the lab bridge. The fields are read from the frame
// as sent; the sniffer does not validate the checksum or the authentication, it reports.
type Advert struct {
	At        time.Time // when the kernel received the frame on br0 (SO_TIMESTAMPNS)
	SrcMAC    net.HardwareAddr
	Src, Dst  netip.Addr
	TTL       uint8 // IPv4 TTL, or IPv6 hop limit
	Version   uint8 // 2 (RFC 3768) or 3 (RFC 9568)
	VRID      uint8
	Priority  uint8
	Interval  time.Duration // v2: whole seconds; v3: centiseconds
	Addresses []netip.Addr
}

func (a Advert) String() string {
	return fmt.Sprintf("%s vrrp v%d vrid %d prio %d from %s (%s) ttl %d",
		a.At.Format("15:04:05.000"), a.Version, a.VRID, a.Priority, a.Src, a.SrcMAC, a.TTL)
}

// parseVRRPFrame decodes an Ethernet frame carrying IPv4 protocol 112 or IPv6 next header
// 112. ok is false for any other frame or a truncated one.
func parseVRRPFrame(b []byte) (Advert, bool) {
	const ethLen = 14
	if len(b) >= ethLen+40 && binary.BigEndian.Uint16(b[12:14]) == unix.ETH_P_IPV6 {
		return parseVRRP6Frame(b)
	}
	if len(b) < ethLen+20 || binary.BigEndian.Uint16(b[12:14]) != unix.ETH_P_IP {
		return Advert{}, false
	}
	ip := b[ethLen:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl || ip[9] != 112 {
		return Advert{}, false
	}
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if total < ihl || total > len(ip) {
		return Advert{}, false
	}
	v := ip[ihl:total]
	if len(v) < 8 {
		return Advert{}, false
	}
	a := Advert{
		SrcMAC:   append(net.HardwareAddr(nil), b[6:12]...),
		Src:      netip.AddrFrom4([4]byte(ip[12:16])),
		Dst:      netip.AddrFrom4([4]byte(ip[16:20])),
		TTL:      ip[8],
		Version:  v[0] >> 4,
		VRID:     v[1],
		Priority: v[2],
	}
	count := int(v[3])
	switch a.Version {
	case 2:
		a.Interval = time.Duration(v[5]) * time.Second
	case 3:
		a.Interval = time.Duration(binary.BigEndian.Uint16(v[4:6])&0x0fff) * 10 * time.Millisecond
	}
	for i := 0; i < count && 8+4*i+4 <= len(v); i++ {
		a.Addresses = append(a.Addresses, netip.AddrFrom4([4]byte(v[8+4*i:8+4*i+4])))
	}
	return a, true
}

// parseVRRP6Frame decodes an Ethernet frame carrying a VRRPv3 advert over IPv6 (next header
// 112 right after the fixed header: VRRP uses no extension header).
func parseVRRP6Frame(b []byte) (Advert, bool) {
	ip := b[14:]
	if ip[0]>>4 != 6 || ip[6] != 112 {
		return Advert{}, false
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if 40+plen > len(ip) || plen < 8 {
		return Advert{}, false
	}
	v := ip[40 : 40+plen]
	a := Advert{
		SrcMAC:   append(net.HardwareAddr(nil), b[6:12]...),
		Src:      netip.AddrFrom16([16]byte(ip[8:24])),
		Dst:      netip.AddrFrom16([16]byte(ip[24:40])),
		TTL:      ip[7],
		Version:  v[0] >> 4,
		VRID:     v[1],
		Priority: v[2],
		Interval: time.Duration(binary.BigEndian.Uint16(v[4:6])&0x0fff) * 10 * time.Millisecond,
	}
	for i := 0; i < int(v[3]) && 8+16*i+16 <= len(v); i++ {
		a.Addresses = append(a.Addresses, netip.AddrFrom16([16]byte(v[8+16*i:8+16*i+16])))
	}
	return a, true
}

// SniffVRRP reports every VRRP frame crossing br0, over IPv4 and IPv6, until ctx is cancelled
// or the lab is closed; then the channel is closed. br0 is put in promiscuous mode so unicast
// adverts between nodes are seen too.
func (l *Lab) SniffVRRP(ctx context.Context) (<-chan Advert, error) {
	parse := func(b []byte, at time.Time) (Advert, bool) {
		a, ok := parseVRRPFrame(b)
		a.At = at
		return a, ok
	}
	v4, err := sniff(ctx, l, "", unix.ETH_P_IP, 256, parse)
	if err != nil {
		return nil, err
	}
	v6, err := sniff(ctx, l, "IPv6 on ", unix.ETH_P_IPV6, 256, parse)
	if err != nil {
		return nil, err
	}
	return merge(v4, v6), nil
}

// merge forwards what both channels deliver to one, closed when both are.
func merge[T any](a, b <-chan T) <-chan T {
	out := make(chan T, cap(a)+cap(b))
	var wg sync.WaitGroup
	for _, in := range []<-chan T{a, b} {
		wg.Go(func() {
			for v := range in {
				out <- v
			}
		})
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out
}

// NA is one ICMPv6 Neighbor Advertisement seen on the lab bridge (RFC 4861 section 4.4), as
// VRRP Masters send for their IPv6 virtual addresses instead of gratuitous ARP.
type NA struct {
	At        time.Time
	SrcMAC    net.HardwareAddr // Ethernet source
	Src, Dst  netip.Addr
	HopLimit  uint8
	Router    bool // R flag
	Solicited bool // S flag
	Override  bool // O flag
	Target    netip.Addr
	TargetMAC net.HardwareAddr // the Target Link-Layer Address option; nil without one
}

// parseNAFrame decodes an Ethernet/IPv6 frame carrying a Neighbor Advertisement (no
// extension headers, as RFC 4861 senders do).
func parseNAFrame(b []byte) (NA, bool) {
	const ethLen, naLen = 14, 24
	if len(b) < ethLen+40+naLen || binary.BigEndian.Uint16(b[12:14]) != unix.ETH_P_IPV6 {
		return NA{}, false
	}
	ip := b[ethLen:]
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if ip[0]>>4 != 6 || ip[6] != 58 || plen < naLen || 40+plen > len(ip) || ip[40] != 136 {
		return NA{}, false
	}
	m := ip[40 : 40+plen]
	na := NA{
		SrcMAC:    append(net.HardwareAddr(nil), b[6:12]...),
		Src:       netip.AddrFrom16([16]byte(ip[8:24])),
		Dst:       netip.AddrFrom16([16]byte(ip[24:40])),
		HopLimit:  ip[7],
		Router:    m[4]&0x80 != 0,
		Solicited: m[4]&0x40 != 0,
		Override:  m[4]&0x20 != 0,
		Target:    netip.AddrFrom16([16]byte(m[8:24])),
	}
	for opts := m[naLen:]; len(opts) >= 8 && opts[1] > 0 && int(opts[1])*8 <= len(opts); opts = opts[int(opts[1])*8:] {
		if opts[0] == 2 && opts[1] == 1 { // Target Link-Layer Address, Ethernet
			na.TargetMAC = append(net.HardwareAddr(nil), opts[2:8]...)
		}
	}
	return na, true
}

// SniffNA reports every Neighbor Advertisement crossing br0 until ctx is cancelled or the lab
// is closed; then the channel is closed.
func (l *Lab) SniffNA(ctx context.Context) (<-chan NA, error) {
	return sniff(ctx, l, "NA on ", unix.ETH_P_IPV6, 64, func(b []byte, at time.Time) (NA, bool) {
		na, ok := parseNAFrame(b)
		na.At = at
		return na, ok
	})
}

// sniff reads the frames of one EtherType crossing br0 (promiscuous), stamps each with the
// kernel's receive time, and delivers those parse accepts until ctx or the lab ends.
//
// The stamp is the kernel's (SO_TIMESTAMPNS), not the moment this process read the frame: on a
// loaded machine the reader can run tens of milliseconds late, and a stamp taken then would
// make two frames sent 100 ms apart look 50 ms apart. SO_TIMESTAMPNS is CLOCK_REALTIME, the
// clock time.Now reads, so the stamps compare with the other stamps of a Timeline; they carry
// no monotonic reading, so such comparisons use the wall clock (a lab does not step it).
func sniff[T any](ctx context.Context, l *Lab, what string, ethertype uint16, buffer int, parse func([]byte, time.Time) (T, bool)) (<-chan T, error) {
	var f *os.File
	err := labns.Do(l.bridgeNS, func() error {
		var err error
		f, err = openSniffer("br0", ethertype)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("testlab: sniff %sbr0: %w", what, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("testlab: sniff %sbr0: %w", what, err)
	}
	out := make(chan T, buffer)
	stop := context.AfterFunc(ctx, func() { f.Close() })
	stopLab := context.AfterFunc(l.ctx, func() { f.Close() })
	go func() {
		defer close(out)
		defer stop()
		defer stopLab()
		defer f.Close()
		buf := make([]byte, 2048)
		oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))
		for {
			n, at, err := recvStamped(rc, buf, oob)
			if err != nil {
				if errors.Is(err, os.ErrClosed) || ctx.Err() != nil || l.ctx.Err() != nil {
					return
				}
				continue
			}
			v, ok := parse(buf[:n], at)
			if !ok {
				continue
			}
			select {
			case out <- v:
			case <-ctx.Done():
				return
			case <-l.ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// openSniffer opens a non-blocking AF_PACKET raw socket receiving the frames of ethertype on
// the interface name of the current namespace, in promiscuous mode, with kernel receive
// timestamps. The socket is created with protocol 0 so it receives nothing until it is bound
// to the interface: no frame of another interface slips in. Closing the returned file (which
// the runtime poller watches) wakes a blocked read.
func openSniffer(name string, ethertype uint16) (*os.File, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("promiscuous mode: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethertype), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind: %w", err)
	}
	return os.NewFile(uintptr(fd), "packet:"+name), nil
}

// htons puts a 16-bit value in network byte order, as AF_PACKET wants the protocol.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// recvStamped reads one frame into buf and returns its length and the kernel's receive
// time from the SCM_TIMESTAMPNS control message in oob. A frame that came without the
// message (never on Linux once SO_TIMESTAMPNS is set) is stamped with time.Now.
func recvStamped(rc syscall.RawConn, buf, oob []byte) (int, time.Time, error) {
	var n, oobn int
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	if rerr != nil {
		return 0, time.Time{}, rerr
	}
	at, ok := kernelStamp(oob[:oobn])
	if !ok {
		at = time.Now()
	}
	return n, at, nil
}

// kernelStamp finds the SCM_TIMESTAMPNS message in the control data of a recvmsg.
func kernelStamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS ||
			len(m.Data) < int(unsafe.Sizeof(unix.Timespec{})) {
			continue
		}
		ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
		return time.Unix(ts.Unix()), true
	}
	return time.Time{}, false
}

// VIPEvent says that a node gained (Present) or lost an address, and when this process heard.
//
// At is when the notification was taken from the netlink library's channel, not when the
// kernel changed the address: netlink messages carry no timestamp (the kernel neither stamps
// its rtnetlink multicasts nor honours SO_TIMESTAMP on netlink sockets), so a busy reader
// makes At late. Late only: an address change is never stamped before it happened, so a
// failover measured up to a VIPEvent errs long, never short.
type VIPEvent struct {
	Node    *Node
	Addr    netip.Addr
	Present bool
	// Tentative: the address is there but awaits duplicate address detection (IFA_F_TENTATIVE,
	// IPv6), so nothing can use it yet; the kernel reports it again when DAD is done.
	Tentative bool
	At        time.Time
}

func (e VIPEvent) String() string {
	verb := "removed from"
	if e.Present {
		verb = "added to"
	}
	return fmt.Sprintf("%s %s %s", e.At.Format("15:04:05.000"), e.Addr, verb+" "+e.Node.Name)
}

// WatchVIP follows vip in every node through netlink address notifications until ctx is
// cancelled or the lab is closed; then the channel is closed. The nodes that hold vip when the
// watch starts are reported first, as Present.
func (l *Lab) WatchVIP(ctx context.Context, vip netip.Addr) (<-chan VIPEvent, error) {
	out := make(chan VIPEvent, 64)
	wctx, cancel := context.WithCancel(ctx)
	stopLab := context.AfterFunc(l.ctx, cancel)
	done := wctx.Done()
	type sub struct {
		n  *Node
		ch chan netlink.AddrUpdate
	}
	var subs []sub
	for _, n := range l.nodes {
		ch := make(chan netlink.AddrUpdate, 64)
		ns := n.ns
		err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
			Namespace:    &ns,
			ListExisting: true,
		})
		if err != nil {
			stopLab()
			cancel()
			return nil, fmt.Errorf("testlab: watch addresses in %s: %w", n.Name, err)
		}
		subs = append(subs, sub{n, ch})
	}
	merged := make(chan VIPEvent, 64)
	finished := make(chan struct{}, len(subs))
	for _, s := range subs {
		go func() {
			defer func() { finished <- struct{}{} }()
			for u := range s.ch {
				at := time.Now() // the best there is: see VIPEvent
				p, ok := prefixOf(&u.LinkAddress)
				if !ok || p.Addr() != vip {
					continue
				}
				select {
				case merged <- VIPEvent{Node: s.n, Addr: vip, Present: u.NewAddr, Tentative: u.Flags&unix.IFA_F_TENTATIVE != 0, At: at}:
				case <-done:
					return
				}
			}
		}()
	}
	go func() {
		for range subs {
			<-finished
		}
		close(merged)
	}()
	go func() {
		defer close(out)
		defer stopLab()
		defer cancel()
		for e := range merged {
			select {
			case out <- e:
			case <-done:
				// Drain so the subscribers can finish.
				for range merged {
				}
				return
			}
		}
	}()
	return out, nil
}

// ARP is one ARP packet seen on the lab bridge. A gratuitous ARP (RFC 5227 announcement, as
// VRRP Masters send for their virtual IPs) has SenderIP == TargetIP.
type ARP struct {
	At        time.Time
	SrcMAC    net.HardwareAddr // Ethernet source
	Op        uint16           // 1 request, 2 reply
	SenderMAC net.HardwareAddr
	SenderIP  netip.Addr
	TargetIP  netip.Addr
}

// Gratuitous reports whether the packet announces SenderIP (sender and target IP equal).
func (a ARP) Gratuitous() bool { return a.SenderIP == a.TargetIP }

// parseARPFrame decodes an Ethernet/IPv4 ARP frame.
func parseARPFrame(b []byte) (ARP, bool) {
	const ethLen = 14
	if len(b) < ethLen+28 || binary.BigEndian.Uint16(b[12:14]) != unix.ETH_P_ARP {
		return ARP{}, false
	}
	p := b[ethLen:]
	if binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != unix.ETH_P_IP || p[4] != 6 || p[5] != 4 {
		return ARP{}, false
	}
	return ARP{
		SrcMAC:    append(net.HardwareAddr(nil), b[6:12]...),
		Op:        binary.BigEndian.Uint16(p[6:8]),
		SenderMAC: append(net.HardwareAddr(nil), p[8:14]...),
		SenderIP:  netip.AddrFrom4([4]byte(p[14:18])),
		TargetIP:  netip.AddrFrom4([4]byte(p[24:28])),
	}, true
}

// SniffARP reports every ARP packet crossing br0 until ctx is cancelled or the lab is closed;
// then the channel is closed.
func (l *Lab) SniffARP(ctx context.Context) (<-chan ARP, error) {
	return sniff(ctx, l, "ARP on ", unix.ETH_P_ARP, 64, func(b []byte, at time.Time) (ARP, bool) {
		a, ok := parseARPFrame(b)
		a.At = at
		return a, ok
	})
}
