package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// vmacGate keeps an IPv6 group's macvlan from sending anything while the node is not Master:
// a traffic-control filter on the macvlan's egress (a clsact qdisc and a one-instruction
// classic BPF program in direct-action mode that returns TC_ACT_SHOT) drops every frame,
// whatever sends it. Open (Master) it is deleted; closed (any other state) it is there.
//
// What it stops is the kernel's own traffic from the virtual MAC on a Backup, which a
// learning switch would take as the virtual MAC moving to the Backup (it then sends the
// Master's traffic there until the Master's next frame): the MLD reports of the multicast
// groups the macvlan is in (all-routers when forwarding is on, answered at every MLD query of
// a querier on the segment), and the MLD state-change reports the kernel sends, up to a
// second later, when a Master's virtual addresses are removed from the macvlan as it leaves
// Master (they leave their solicited-node groups). keepalived drops MLD reports on its VMAC
// interfaces with nftables or iptables rules for the same reason; a tc filter needs neither
// and nothing but CAP_NET_ADMIN. (The macvlan carries no address of its own, so a Backup's
// is in no solicited-node group in the first place; see vmacLink.)
//
// Frames the Router sends itself go out of the macvlan only while Master: an advert sent as
// Master, including the priority-0 advert of a resignation, leaves before Remove closes the
// gate, and Add opens it before the first advert of a takeover.
type vmacGate struct {
	sock  *nl.NetlinkSocket // a route socket in Dial's namespace, usable from any thread
	index int               // the macvlan's
}

const (
	vmacGatePrio   = 1
	vmacGateHandle = 1
	// vmacGateKeeper is a filter that passes everything on (TC_ACT_UNSPEC), there for the
	// gate's whole life: while the filter list of the priority is not empty, deleting the
	// drop filter does not tear the list down: opening took 190-420 µs without it, 11-37 µs
	// with it (BenchmarkVMACGate, docs/benchmarks.md).
	vmacGateKeeper = 2
)

// newVMACGate gives link (the macvlan, not yet up) its clsact qdisc and closes the gate. It
// runs in Dial's network namespace.
func newVMACGate(h *netlink.Handle, link netlink.Link) (*vmacGate, error) {
	idx := link.Attrs().Index
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := h.QdiscAdd(q); err != nil {
		return nil, fmt.Errorf("vrrp: virtual MAC: adding a clsact qdisc to %s: %w", link.Attrs().Name, err)
	}
	sock, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("vrrp: virtual MAC: opening a route socket: %w", err)
	}
	g := &vmacGate{sock: sock, index: idx}
	if err := g.add(vmacGateKeeper, passOn()); err != nil {
		sock.Close()
		return nil, err
	}
	if err := g.close(); err != nil {
		sock.Close()
		return nil, err
	}
	return g, nil
}

// request starts a request for the gate's filter of the given handle.
func (g *vmacGate) request(typ uint16, flags uint16, handle uint32) *nl.NetlinkRequest {
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{Len: unix.SizeofNlMsghdr, Type: typ, Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK | flags},
		Sockets:  map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: g.sock}},
	}
	req.AddData(&nl.TcMsg{
		Family:  nl.FAMILY_ALL,
		Ifindex: int32(g.index),
		Handle:  handle,
		Parent:  netlink.HANDLE_MIN_EGRESS,
		Info:    netlink.MakeHandle(vmacGatePrio, nl.Swap16(unix.ETH_P_ALL)),
	})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated("bpf")))
	return req
}

// dropAll is the classic BPF program "return TC_ACT_SHOT", as struct sock_filter entries;
// passOn "return TC_ACT_UNSPEC" (the next filter decides; none: the frame goes).
func dropAll() []byte { return retProgram(2) }

func passOn() []byte { return retProgram(0xffffffff) }

func retProgram(v uint32) []byte {
	prog, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: v}})
	if err != nil {
		panic(err) // a constant program
	}
	b := make([]byte, 0, 8*len(prog))
	for _, in := range prog {
		b = binary.NativeEndian.AppendUint16(b, in.Op)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return b
}

// close adds the drop filter; already there, or the macvlan gone, is fine. A nil gate (none could be made) does
// nothing.
func (g *vmacGate) close() error {
	if g == nil {
		return nil
	}
	// ENODEV: the macvlan is gone (with a deleted parent), and nothing leaves it.
	if err := g.add(vmacGateHandle, dropAll()); err != nil && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("vrrp: virtual MAC: closing the macvlan's egress (tc filter): %w", err)
	}
	return nil
}

// add adds the one-instruction classic BPF filter prog (direct action) with handle.
func (g *vmacGate) add(handle uint32, prog []byte) error {
	req := g.request(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_EXCL, handle)
	opts := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	opts.AddRtAttr(nl.TCA_BPF_OPS_LEN, nl.Uint16Attr(uint16(len(prog)/8)))
	opts.AddRtAttr(nl.TCA_BPF_OPS, prog)
	opts.AddRtAttr(nl.TCA_BPF_FLAGS, nl.Uint32Attr(nl.TCA_BPF_FLAG_ACT_DIRECT))
	req.AddData(opts)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// open deletes the drop filter; already gone is fine. A nil gate does nothing.
func (g *vmacGate) open() error {
	if g == nil {
		return nil
	}
	if _, err := g.request(unix.RTM_DELTFILTER, 0, vmacGateHandle).Execute(unix.NETLINK_ROUTE, 0); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("vrrp: virtual MAC: opening the macvlan's egress (tc filter): %w", err)
	}
	return nil
}

// Close releases the route socket; the filter and qdisc go with the macvlan.
func (g *vmacGate) Close() { g.sock.Close() }

// gatedAddresser is the Addresser of an IPv6 group in virtual-MAC mode: the virtual
// addresses go on the macvlan as usual, and the macvlan's egress is open while they are
// held: opened before they are added (the takeover's adverts, Neighbor Advertisements and
// MLD reports leave from the virtual MAC), closed before they are removed (the MLD reports
// of leaving their solicited-node groups do not).
type gatedAddresser struct {
	*netlinkAddresser
	vmac *vmacLink // its gate changes when the macvlan is made again (rebind)
}

var _ Addresser = (*gatedAddresser)(nil)

// addresser is the Router's Addresser over addrs: gated for an IPv6 group's macvlan, addrs
// itself otherwise (v nil: no virtual-MAC mode).
func (v *vmacLink) addresser(addrs *netlinkAddresser) Addresser {
	if v == nil || !v.ipv6 {
		return addrs
	}
	return &gatedAddresser{netlinkAddresser: addrs, vmac: v}
}

// sendsWithoutAddress: the adverts leave from the macvlan with the parent's link-local
// address, which it does not hold (an IPv6 group's multicast adverts; unicast ones leave from
// the parent), so the socket needs IPV6_FREEBIND. v nil: no virtual-MAC mode.
func (v *vmacLink) sendsWithoutAddress(unicast bool) bool {
	return v != nil && v.ipv6 && !unicast
}

// Add opens the gate, then adds the addresses; a gate that fails to open is an error too
// (the Router retries), though the addresses are added.
func (a *gatedAddresser) Add(vips []netip.Prefix) error {
	gerr := a.vmac.gate.open()
	return errors.Join(gerr, a.netlinkAddresser.Add(vips))
}

// Remove closes the gate, then removes the addresses.
func (a *gatedAddresser) Remove(vips []netip.Prefix) error {
	gerr := a.vmac.gate.close()
	return errors.Join(gerr, a.netlinkAddresser.Remove(vips))
}
