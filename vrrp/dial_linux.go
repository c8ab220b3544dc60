package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/vishvananda/netlink"
)

// Dial sets up the production I/O for cfg and returns a Router over it: a netlink handle, the
// parent's ARP settings a crashed run left changed in virtual-MAC mode put back (per the record
// in StateDir), in virtual-MAC mode the macvlan (replacing a leftover of a crashed run), the removal of virtual
// addresses a crashed run left behind (per the record in StateDir), the claim on the virtual
// addresses that are not configured (recorded now, so that a takeover writes nothing to disk),
// the raw protocol-112 socket and the gratuitous ARP socket. An IPv6 group (cfg.IPv6) gets
// the IPv6 equivalents: the raw IPv6 socket joined to ff02::12 and sending from the link-local
// address, virtual addresses added without duplicate address detection, the macvlan with
// 00-00-5E-00-02-{VRID}, and unsolicited Neighbor Advertisements in place of gratuitous ARP. Its Router runs the protocol
// timers on a timerfd, which fires on time where a time.Timer may be up to 1 ms late, and
// follows the interface (see Status.Fault): deleted, down or without carrier, the node leaves
// the protocol; recreated under the same name, its sockets (and in virtual-MAC mode the
// macvlan) are bound to the new one.
//
// A StateDir that cannot be written (read-only, full, not a directory) does not fail Dial:
// the record is kept in memory and reported in Status.RecordError until it is written.
//
// Everything is bound to the network namespace of the calling thread at the time of the call;
// the Router keeps working there whichever thread runs it. Dial needs CAP_NET_ADMIN and
// CAP_NET_RAW.
func Dial(cfg Config) (_ *Router, err error) {
	if cfg.Interface == "" {
		return nil, errors.New("vrrp: Interface: required")
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("vrid", cfg.VRID, "interface", cfg.Interface)
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
			// The record is for crash recovery, redundancy comes first: the Router runs with
			// the record in memory and reports it (Status.RecordError) until it can be written.
			log.Warn("state directory unusable; the address record is kept in memory", "state_dir", cfg.StateDir, "err", err)
		}
	}

	var closers []func() error
	defer func() {
		if err != nil {
			for _, c := range slices.Backward(closers) {
				c()
			}
		}
	}()

	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("vrrp: opening netlink: %w", err)
	}
	closeHandle := func() error { h.Close(); return nil }
	closers = append(closers, closeHandle)
	extras := []func() error{closeHandle} // the Router's, beyond the I/O New is given

	parent, err := h.LinkByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp: interface %q: %w", cfg.Interface, err)
	}
	pifi := linkInterface(parent)
	if pifi.Flags&net.FlagUp == 0 {
		log.Warn("interface is down; the node stays out of the protocol until it is up")
	}
	configured := cfg.Primary
	if cfg.Primary, err = resolvePrimary(h, parent, cfg); err != nil {
		return nil, err
	}
	// Reject what the protocol cannot run before touching links, addresses or sockets.
	if _, err := NewMachine(cfg.machineConfig()); err != nil {
		return nil, err
	}

	// The parent's ARP settings a crashed run changed in virtual-MAC mode are put back first,
	// in either mode: this run records its own from the values from before.
	journal := openSysctlJournal(sysctlJournalPath(cfg.StateDir, cfg.Interface, cfg.VRID), log)

	vmac, allowed, err := dialVMAC(h, parent, cfg, journal, log)
	if err != nil {
		return nil, err
	}
	sendIfi, addrLink := pifi, parent
	if vmac != nil {
		closers = append(closers, vmac.Close)
		extras = append(extras, vmac.Close)
		sendIfi, addrLink = vmac.ifi, vmac.link
	}

	record := recordPath(cfg.StateDir, cfg.Interface, cfg.VRID)
	if cfg.IPv6() {
		record = recordPath6(cfg.StateDir, cfg.Interface, cfg.VRID)
	}
	addrs := newNetlinkAddresser(h, addrLink, record, log)
	closers = append(closers, addrs.Close)
	if err := addrs.removeStale(h, allowed); err != nil {
		return nil, err
	}
	if err := addrs.claim(cfg.VirtualIPs); err != nil {
		return nil, err
	}

	peers, advertIfi := []netip.Addr(nil), sendIfi
	if cfg.Unicast {
		// Unicast adverts leave from the parent even in virtual-MAC mode. From the macvlan,
		// with the Primary address as source, the kernel would resolve the peer with an ARP
		// request sent from the virtual MAC on behalf of the Primary address, teaching the peer
		// (and the segment) that this node's own address lives at a MAC that moves with the
		// Master. Multicast adverts need no ARP and do leave from the virtual MAC (RFC 3768
		// section 7.3).
		peers, advertIfi = cfg.Peers, pifi
	}
	conn, arp, err := dialSockets(cfg, connConfig{recv: pifi, send: advertIfi, primary: cfg.Primary, peers: peers,
		freebind: vmac.sendsWithoutAddress(cfg.Unicast)}, sendIfi)
	if err != nil {
		return nil, err
	}
	closers = append(closers, conn.Close, arp.Close)
	if err := conn.filterVRID(cfg.VRID); err != nil {
		log.Warn("adverts of other VRIDs reach this router and are dropped here", "err", err)
	}

	r, err := New(cfg, conn, vmac.addresser(addrs), arp)
	if err != nil {
		return nil, err
	}
	lm, err := newLinkMonitor(h, parent, cfg, configured, vmac, conn, arp, addrs, log)
	if err != nil {
		return nil, err
	}
	closers = append(closers, lm.Close)
	extras = append(extras, lm.Close)
	r.link = lm
	r.newTimer = func() (protocolTimer, error) { return newTimerfd() }
	r.takeoverLead = takeoverLead
	// The Router closes conn, addrs and arp itself, then the extras: the macvlan before the
	// netlink handle that deletes it.
	for _, c := range slices.Backward(extras) {
		r.closers = append(r.closers, c)
	}
	return r, nil
}

// dialVMAC makes the macvlan of virtual-MAC mode (nil without it, after deleting a leftover
// of a crashed run in that mode) and returns the links whose addresses are the daemon's.
func dialVMAC(h *netlink.Handle, parent netlink.Link, cfg Config, journal *sysctlJournal, log *slog.Logger) (*vmacLink, []string, error) {
	allowed := []string{cfg.Interface}
	if !cfg.VirtualMAC {
		return nil, allowed, deleteLeftoverVMAC(h, parent, cfg.VRID, cfg.IPv6(), false, log)
	}
	name := vmacName(cfg.VRID)
	if cfg.IPv6() {
		name = vmacName6(cfg.VRID)
	}
	v, err := setupVMAC(h, parent, cfg.VRID, cfg.IPv6(), journal, log)
	if err != nil {
		return nil, nil, err
	}
	return v, append(allowed, name), nil
}

// boundConn is a [Conn] bound to an interface, which the link monitor can move to a
// recreated one; boundAnnouncer the same for an [Announcer], made again on the new interface
// (in Dial's network namespace).
type (
	boundConn interface {
		Conn
		rebind(recv, send *net.Interface) error
		// setSource changes the adverts' source address (a new Primary).
		setSource(src netip.Addr)
		// filterVRID makes the kernel pass only the adverts of this VRID (vridFilter).
		filterVRID(vrid uint8) error
	}
	boundAnnouncer interface {
		Announcer
		Close() error
		rebind(ifi *net.Interface) error
		// setSource changes the announcements' IP source (a new Primary; only a Neighbor
		// Advertisement carries one).
		setSource(src netip.Addr)
	}
)

var (
	_ boundConn      = (*rawConn)(nil)
	_ boundConn      = (*rawConn6)(nil)
	_ boundAnnouncer = (*frameAnnouncer)(nil)
)

// dialSockets opens the advert socket and the announcer of cfg's family: for IPv4 the raw
// protocol-112 socket and gratuitous ARP on announceIfi, for IPv6 the raw IPv6 socket and
// unsolicited Neighbor Advertisements.
func dialSockets(cfg Config, cc connConfig, announceIfi *net.Interface) (boundConn, boundAnnouncer, error) {
	var conn boundConn
	var err error
	if cfg.IPv6() {
		conn, err = newRawConn6(cc)
	} else {
		conn, err = newRawConn(cc)
	}
	if err != nil {
		return nil, nil, err
	}
	var arp boundAnnouncer
	if cfg.IPv6() {
		arp, err = newNAAnnouncer(announceIfi, cfg.Primary, cfg.NARouter)
	} else {
		arp, err = newARPAnnouncer(announceIfi)
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, arp, nil
}

// resolvePrimary checks that cfg.Primary is configured on the link, or picks it when it is
// unset: the link's first IPv4 address that is not a virtual one for an IPv4 group, its first
// link-local address that is not a virtual one for an IPv6 group (RFC 9568 section 5.1.2.1).
// The kernel refuses to send from an address the host does not have, and the wrong one would
// lose every tie-break.
func resolvePrimary(h *netlink.Handle, link netlink.Link, cfg Config) (netip.Addr, error) {
	family := netlink.FAMILY_V4
	if cfg.IPv6() {
		family = netlink.FAMILY_V6
		if cfg.Primary.IsValid() && !cfg.Primary.IsLinkLocalUnicast() {
			return netip.Addr{}, fmt.Errorf("vrrp: Primary %s: an IPv6 group sends from the interface's link-local address (RFC 9568 section 5.1.2.1)", cfg.Primary)
		}
	}
	addrs, err := h.AddrList(link, family)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: listing addresses of %s: %w", cfg.Interface, err)
	}
	for _, a := range addrs {
		p, ok := ipNetPrefix(a.IPNet)
		if !ok || (cfg.IPv6() && !p.Addr().IsLinkLocalUnicast()) {
			continue
		}
		if cfg.Primary.IsValid() {
			if p.Addr() == cfg.Primary {
				return cfg.Primary, nil
			}
			continue
		}
		if !containsAddr(cfg.VirtualIPs, p.Addr()) {
			return p.Addr(), nil
		}
	}
	if cfg.Primary.IsValid() {
		return netip.Addr{}, fmt.Errorf("vrrp: Primary %s is not configured on %s", cfg.Primary, cfg.Interface)
	}
	if cfg.IPv6() {
		return netip.Addr{}, fmt.Errorf("vrrp: Primary: %s has no IPv6 link-local address of its own (is IPv6 disabled on it?)", cfg.Interface)
	}
	return netip.Addr{}, fmt.Errorf("vrrp: Primary: %s has no IPv4 address of its own", cfg.Interface)
}

// linkInterface is the net.Interface of a netlink link, read from the same namespace as the
// link (net.InterfaceByName would ask the calling thread's).
func linkInterface(l netlink.Link) *net.Interface {
	a := l.Attrs()
	return &net.Interface{Index: a.Index, MTU: a.MTU, Name: a.Name, HardwareAddr: a.HardwareAddr, Flags: a.Flags}
}
