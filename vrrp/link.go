package vrrp

import (
	"fmt"
	"net/netip"
)

// linkState is what the kernel says about the interface a Router runs on, as read by the
// link watcher (RTM_GETLINK and RTM_GETADDR in Dial's namespace).
type linkState struct {
	Exists     bool // a link of the configured name exists
	Up         bool // IFF_UP: administratively up
	Carrier    bool // IFF_LOWER_UP: the driver reports carrier (a VLAN or macvlan inherits its parent's)
	HasPrimary bool // the Primary address is configured on it
	// PrimaryTentative: the Primary is still in duplicate address detection (an IPv6
	// link-local address is made again, with DAD, when the interface comes back up) and
	// cannot be sent from yet.
	PrimaryTentative bool
}

// linkVerdict decides whether the interface named name can carry the protocol: the cause
// and a reason for people when it cannot (the Router then takes the node out with
// [Machine.Fault]), CauseUnknown and "" when it can. It is pure; the order of the checks is
// the order of repair an operator follows (plug it in, bring it up, give it its address).
//
// Without IFF_UP or carrier nothing can be sent or heard (RFC 2863's operational state is
// down or lowerlayerdown then); without the Primary address adverts would leave with another
// source and lose every tie-break, or not at all.
func linkVerdict(name string, primary netip.Addr, s linkState) (Cause, string) {
	switch {
	case !s.Exists:
		return CauseInterfaceGone, fmt.Sprintf("interface %s gone", name)
	case !s.Up:
		return CauseInterfaceDown, fmt.Sprintf("interface %s down", name)
	case !s.Carrier:
		return CauseInterfaceDown, fmt.Sprintf("interface %s has no carrier", name)
	case !s.HasPrimary:
		return CauseInterfaceDown, fmt.Sprintf("interface %s lacks the primary address %s", name, primary)
	case s.PrimaryTentative:
		return CauseInterfaceDown, fmt.Sprintf("interface %s: the primary address %s is tentative (duplicate address detection)", name, primary)
	}
	return CauseUnknown, ""
}
