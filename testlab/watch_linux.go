package testlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Advert is one VRRP advertisement seen on the lab bridge. The fields are read from the frame
// as sent; the sniffer does not validate the checksum or the authentication, it reports.
type Advert struct {
	At        time.Time // when this process read the frame
	SrcMAC    net.HardwareAddr
	Src, Dst  netip.Addr
	TTL       uint8
	Version   uint8 // 2 (RFC 3768) or 3 (RFC 5798)
	VRID      uint8
	Priority  uint8
	Interval  time.Duration // v2: whole seconds; v3: centiseconds
	Addresses []netip.Addr
}

func (a Advert) String() string {
	return fmt.Sprintf("%s vrrp v%d vrid %d prio %d from %s (%s) ttl %d",
		a.At.Format("15:04:05.000"), a.Version, a.VRID, a.Priority, a.Src, a.SrcMAC, a.TTL)
}

// parseVRRPFrame decodes an Ethernet frame carrying IPv4 protocol 112. ok is false for any
// other frame or a truncated one.
func parseVRRPFrame(b []byte) (Advert, bool) {
	const ethLen = 14
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

// SniffVRRP reports every VRRP frame crossing br0 until ctx is cancelled or the lab is closed;
// then the channel is closed. br0 is put in promiscuous mode so unicast adverts between nodes
// are seen too.
func (l *Lab) SniffVRRP(ctx context.Context) (<-chan Advert, error) {
	return sniff(ctx, l, "", unix.ETH_P_IP, 256, func(b []byte, at time.Time) (Advert, bool) {
		a, ok := parseVRRPFrame(b)
		a.At = at
		return a, ok
	})
}

// sniff reads the frames of one EtherType crossing br0 (promiscuous), stamps each with the
// time it was read, and delivers those parse accepts until ctx or the lab ends.
func sniff[T any](ctx context.Context, l *Lab, what string, ethertype uint16, buffer int, parse func([]byte, time.Time) (T, bool)) (<-chan T, error) {
	var conn *packet.Conn
	err := doIn(l.bridgeNS, func() error {
		ifi, err := net.InterfaceByName("br0")
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, int(ethertype), nil)
		if err != nil {
			return err
		}
		return conn.SetPromiscuous(true)
	})
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("testlab: sniff %sbr0: %w", what, err)
	}
	out := make(chan T, buffer)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	stopLab := context.AfterFunc(l.ctx, func() { conn.Close() })
	go func() {
		defer close(out)
		defer stop()
		defer stopLab()
		defer conn.Close()
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) || ctx.Err() != nil || l.ctx.Err() != nil {
					return
				}
				continue
			}
			v, ok := parse(buf[:n], time.Now())
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

// VIPEvent says that a node gained (Present) or lost an address, and when this process heard.
type VIPEvent struct {
	Node    *Node
	Addr    netip.Addr
	Present bool
	At      time.Time
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
				at := time.Now()
				p, ok := prefixOf(&u.LinkAddress)
				if !ok || p.Addr() != vip {
					continue
				}
				select {
				case merged <- VIPEvent{Node: s.n, Addr: vip, Present: u.NewAddr, At: at}:
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
