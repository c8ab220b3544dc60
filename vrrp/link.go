package vrrp

import (
	"fmt"
	"net/netip"
	"slices"
)

// linkState is what the kernel says about the interface a Router runs on, as read by the
// link watcher (RTM_GETLINK and RTM_GETADDR in Dial's namespace).
type linkState struct {
	Exists bool // a link of the configured name exists
	// RenamedTo is the name the link the Router was bound to has now, when no link has the
	// configured name (it was renamed away); empty when it is gone too.
	RenamedTo string
	Up        bool // IFF_UP: administratively up
	Carrier   bool // IFF_LOWER_UP: the driver reports carrier (a VLAN or macvlan inherits its parent's)
	// Dormant: RFC 2863's operational state is dormant (IF_OPER_DORMANT): the link is up but
	// waits for an external event, an 802.1X port not yet authorised, a wifi not associated
	// (the supplicant sets it up); Testing: IF_OPER_TESTING.
	Dormant, Testing bool
	// Addrs are the interface's addresses of the group's family, as listed (read only while
	// it is up with carrier).
	Addrs []linkAddr
}

// linkAddr is one address of the interface with the flags that decide whether it can be
// sent from.
type linkAddr struct {
	Addr      netip.Addr
	Tentative bool // IFA_F_TENTATIVE: still in duplicate address detection
	DADFailed bool // IFA_F_DADFAILED: another host on the link has it
}

// primaryRule is what decides the group's Primary address on its interface.
type primaryRule struct {
	// Configured is the Primary the operator set (Config.Primary); invalid when Dial picked
	// one from the interface, as for every IPv6 group.
	Configured netip.Addr
	// Current is the Primary in use now (never invalid: Dial resolved it).
	Current netip.Addr
	// VirtualIPs and Peers are never picked: a virtual address is not this node's own, and
	// the Machine refuses a Primary that is a unicast peer.
	VirtualIPs []netip.Prefix
	Peers      []netip.Addr
}

// linkVerdict decides whether the interface named name can carry the protocol, and from
// which Primary address: the cause and a reason for people when it cannot (the Router then
// takes the node out with [Machine.Fault]), CauseUnknown and "" when it can. It is pure; the
// order of the checks is the order of repair an operator follows (plug it in, bring it up,
// give it its address).
//
// Without IFF_UP or carrier nothing can be sent or heard (RFC 2863's operational state is
// down or lowerlayerdown then); a dormant link (or one in testing) carries no traffic for the
// protocol either, though it is up with carrier. Without the Primary address adverts would
// leave with another source and lose every tie-break, or not at all.
//
// The interface is the one with the configured name: renamed away, it is gone as if it was
// deleted (the configuration names a name, and a name reused for another link is the one
// meant); another link renamed to the configured name is picked up as a recreated one.
//
// The Primary is the configured one when there is one: the operator named it, and the node
// waits for it to come back. A picked one follows the interface: it stays while it is there,
// and when it is gone (an interface recreated with another MAC address has another EUI-64
// link-local address, the source RFC 9568 section 5.1.2.1 wants; an IPv4 address renumbered)
// the interface's first address of the same kind that is not a virtual address or a peer
// takes its place, one that can be sent from before one still in duplicate address
// detection. Without any, the Primary stays what it was and the verdict says it is missing.
func linkVerdict(name string, rule primaryRule, s linkState) (netip.Addr, Cause, string) {
	switch {
	case !s.Exists && s.RenamedTo != "":
		return rule.Current, CauseInterfaceGone, fmt.Sprintf("interface %s gone (renamed to %s)", name, s.RenamedTo)
	case !s.Exists:
		return rule.Current, CauseInterfaceGone, fmt.Sprintf("interface %s gone", name)
	case !s.Up:
		return rule.Current, CauseInterfaceDown, fmt.Sprintf("interface %s down", name)
	case !s.Carrier:
		return rule.Current, CauseInterfaceDown, fmt.Sprintf("interface %s has no carrier", name)
	case s.Dormant:
		return rule.Current, CauseInterfaceDown, fmt.Sprintf("interface %s is dormant (waiting for authorisation or association, e.g. 802.1X or wifi)", name)
	case s.Testing:
		return rule.Current, CauseInterfaceDown, fmt.Sprintf("interface %s is in testing mode", name)
	}
	primary := choosePrimary(rule, s.Addrs)
	i := slices.IndexFunc(s.Addrs, func(a linkAddr) bool { return a.Addr == primary })
	switch {
	case i < 0:
		return primary, CauseInterfaceDown, fmt.Sprintf("interface %s lacks the primary address %s", name, primary)
	case s.Addrs[i].DADFailed:
		return primary, CauseInterfaceDown, fmt.Sprintf("interface %s: the primary address %s failed duplicate address detection (another host has it)", name, primary)
	case s.Addrs[i].Tentative:
		return primary, CauseInterfaceDown, fmt.Sprintf("interface %s: the primary address %s is tentative (duplicate address detection)", name, primary)
	}
	return primary, CauseUnknown, ""
}

// choosePrimary is the Primary of rule given the interface's addresses; see [linkVerdict].
func choosePrimary(rule primaryRule, addrs []linkAddr) netip.Addr {
	if rule.Configured.IsValid() {
		return rule.Configured
	}
	if slices.ContainsFunc(addrs, func(a linkAddr) bool { return a.Addr == rule.Current && !a.DADFailed }) {
		return rule.Current
	}
	var tentative netip.Addr
	for _, a := range addrs {
		if !rule.candidate(a.Addr) || a.DADFailed {
			continue
		}
		if !a.Tentative {
			return a.Addr
		}
		if !tentative.IsValid() {
			tentative = a.Addr
		}
	}
	if tentative.IsValid() {
		return tentative
	}
	return rule.Current
}

// candidate reports whether a may be picked as the Primary: of the Current's family, for
// IPv6 link-local (RFC 9568 section 5.1.2.1), neither a virtual address nor a peer. Dial's
// first pick follows the same rule (resolvePrimary).
func (rule primaryRule) candidate(a netip.Addr) bool {
	switch {
	case !a.IsValid() || !sameFamily(a, rule.Current):
		return false
	case a.Is6() && !a.IsLinkLocalUnicast():
		return false
	case slices.ContainsFunc(rule.VirtualIPs, func(p netip.Prefix) bool { return p.Addr() == a }):
		return false
	}
	return !slices.Contains(rule.Peers, a)
}
