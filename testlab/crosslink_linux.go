package testlab

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// CrossSubnet is the subnet of the cable Crosslink lays between two nodes (TEST-NET-2, apart
// from the lab bridge's subnet).
var CrossSubnet = netip.MustParsePrefix("198.51.100.0/24")

// Crosslink lays a dedicated cable between nodes a and b, outside the lab bridge: a veth pair
// named "x0" in both namespaces, addressed .11 and .12 (by node number: node1 is .11) in
// CrossSubnet, up. It is the second path of two PBX boxes (a crossover cable for the peer
// link), which cutting the bridge (Partition, Isolate, CutLink) leaves alone; the cable goes
// with the namespaces when the lab closes. It returns the two addresses.
func (l *Lab) Crosslink(a, b *Node) (netip.Addr, netip.Addr, error) {
	var out [2]netip.Addr
	for i, n := range []*Node{a, b} {
		idx := l.indexOf(n)
		if idx < 0 {
			return netip.Addr{}, netip.Addr{}, fmt.Errorf("testlab: %s is not a node of the lab", n.Name)
		}
		base := CrossSubnet.Addr().As4()
		base[3] = byte(11 + idx)
		out[i] = netip.AddrFrom4(base)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "x0"}, PeerName: "x0", PeerNamespace: netlink.NsFd(int(b.ns))}
	if err := a.handle.LinkAdd(veth); err != nil {
		return out[0], out[1], fmt.Errorf("testlab: cable %s<->%s: %w", a.Name, b.Name, err)
	}
	for i, n := range []*Node{a, b} {
		x, err := n.handle.LinkByName("x0")
		if err != nil {
			return out[0], out[1], fmt.Errorf("testlab: x0 in %s: %w", n.Name, err)
		}
		p := netip.PrefixFrom(out[i], CrossSubnet.Bits())
		if err := n.handle.AddrAdd(x, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
			return out[0], out[1], fmt.Errorf("testlab: address %s on %s/x0: %w", p, n.Name, err)
		}
		if err := n.handle.LinkSetUp(x); err != nil {
			return out[0], out[1], fmt.Errorf("testlab: %s/x0 up: %w", n.Name, err)
		}
	}
	return out[0], out[1], nil
}

// indexOf is n's place among the lab's nodes (node1 is 0), or -1.
func (l *Lab) indexOf(n *Node) int {
	for i, m := range l.nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// SetCable sets the node's end of the Crosslink cable up or down: down, both ends lose
// carrier, as when the cable is pulled.
func (n *Node) SetCable(up bool) error {
	x, err := n.handle.LinkByName("x0")
	if err != nil {
		return fmt.Errorf("testlab: x0 in %s: %w", n.Name, err)
	}
	if up {
		err = n.handle.LinkSetUp(x)
	} else {
		err = n.handle.LinkSetDown(x)
	}
	if err != nil {
		return fmt.Errorf("testlab: %s/x0 up=%t: %w", n.Name, up, err)
	}
	return nil
}
