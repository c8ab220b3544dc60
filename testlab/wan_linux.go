package testlab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/vishvananda/netlink"
)

// Link is a node's second interface in a lab with Options.WAN: eth1, a veth whose other end
// is a port of br1, with the node's address in the lab's WANSubnet. It stands for a PBX's WAN
// side beside its LAN side (the node's eth0 on br0).
type Link struct {
	Iface  string       // the interface inside the node's namespace: "eth1"
	Addr   netip.Addr   // its fixed IPv4 address in Lab.WANSubnet
	Prefix netip.Prefix // Addr with WANSubnet's prefix length, as installed

	node     *Node
	portName string // the veth end on br1, in the bridge namespace
}

// attachWAN gives node n (counted from 1) its eth1 on br1 with host part 10+i of WANSubnet.
func (l *Lab) attachWAN(n *Node, i int) error {
	addr, err := hostIn(l.WANSubnet, 10+i)
	if err != nil {
		return err
	}
	w := &Link{Iface: "eth1", Addr: addr, Prefix: netip.PrefixFrom(addr, l.WANSubnet.Bits()), node: n, portName: fmt.Sprintf("w%d", i)}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: w.portName},
		PeerName:      w.Iface,
		PeerNamespace: netlink.NsFd(int(n.ns)),
	}
	if err := l.bridge.LinkAdd(veth); err != nil {
		return fmt.Errorf("testlab: add veth %s<->%s/%s: %w", w.portName, n.NSName, w.Iface, err)
	}
	port, err := l.bridge.LinkByName(w.portName)
	if err != nil {
		return fmt.Errorf("testlab: veth %s: %w", w.portName, err)
	}
	if err := l.bridge.LinkSetMasterByIndex(port, l.wanIndex); err != nil {
		return fmt.Errorf("testlab: attach %s to br1: %w", w.portName, err)
	}
	if err := l.bridge.LinkSetUp(port); err != nil {
		return fmt.Errorf("testlab: %s up: %w", w.portName, err)
	}
	eth, err := n.handle.LinkByName(w.Iface)
	if err != nil {
		return fmt.Errorf("testlab: %s in %s: %w", w.Iface, n.NSName, err)
	}
	if err := n.handle.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(w.Prefix)}); err != nil {
		return fmt.Errorf("testlab: address %s on %s/%s: %w", w.Prefix, n.NSName, w.Iface, err)
	}
	if err := n.handle.LinkSetUp(eth); err != nil {
		return fmt.Errorf("testlab: %s/%s up: %w", n.NSName, w.Iface, err)
	}
	n.WAN = w
	return nil
}

// hostIn is the address with host part h in the IPv4 subnet p.
func hostIn(p netip.Prefix, h int) (netip.Addr, error) {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(h)
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	if !p.Contains(a) {
		return netip.Addr{}, fmt.Errorf("testlab: host %d does not fit in %s", h, p)
	}
	return a, nil
}

// DefaultWANVIP is host .100 of the lab's WAN subnet with its prefix length; invalid in a
// lab without Options.WAN.
func (l *Lab) DefaultWANVIP() netip.Prefix {
	if !l.WANSubnet.IsValid() {
		return netip.Prefix{}
	}
	a, _ := hostIn(l.WANSubnet, 100)
	return netip.PrefixFrom(a, l.WANSubnet.Bits())
}

// Cut sets the br1 end of the link's veth down: the node's eth1 loses carrier, as when the
// WAN cable is pulled; its eth0 keeps its own. Restore undoes it.
func (w *Link) Cut() error { return w.setPort(false) }

// Restore sets the br1 end up again and waits until eth1 has carrier and br1 forwards from
// its port.
func (w *Link) Restore() error {
	if err := w.setPort(true); err != nil {
		return err
	}
	return w.waitCarrier(w.node.lab.ctx)
}

func (w *Link) setPort(up bool) error {
	br := w.node.lab.bridge
	port, err := br.LinkByName(w.portName)
	if err != nil {
		return fmt.Errorf("testlab: port %s of %s: %w", w.portName, w.node.Name, err)
	}
	if up {
		err = br.LinkSetUp(port)
	} else {
		err = br.LinkSetDown(port)
	}
	if err != nil {
		return fmt.Errorf("testlab: set port %s of %s up=%t: %w", w.portName, w.node.Name, up, err)
	}
	return nil
}

// waitCarrier waits until eth1 is operationally up and br1 forwards from its port (see
// Node.waitCarrier: both come some time after the links are set up).
func (w *Link) waitCarrier(ctx context.Context) error {
	n := w.node
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var state netlink.LinkOperState
	var port uint8
	var lastErr error
	err := poll.Context(ctx, 5*time.Millisecond, func() bool {
		eth, err := n.handle.LinkByName(w.Iface)
		if err != nil {
			lastErr = fmt.Errorf("testlab: %s/%s: %w", n.Name, w.Iface, err)
			return false
		}
		state = eth.Attrs().OperState
		if port, lastErr = n.lab.bridgePortState(w.portName); lastErr != nil {
			return false
		}
		return state == netlink.OperUp && port == brStateForwarding
	})
	if err != nil {
		return fmt.Errorf("testlab: %s/%s has no carrier (state %s, bridge port %s state %d, %v): %w",
			n.Name, w.Iface, state, w.portName, port, lastErr, err)
	}
	return nil
}
