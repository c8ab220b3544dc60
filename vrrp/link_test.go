package vrrp

import (
	"net/netip"
	"testing"
)

func TestLinkVerdict(t *testing.T) {
	a := netip.MustParseAddr
	primary := a("192.0.2.1")
	fixed := primaryRule{Configured: primary, Current: primary, VirtualIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")}}
	with := func(addrs ...linkAddr) linkState {
		return linkState{Exists: true, Up: true, Carrier: true, Addrs: addrs}
	}
	usable := with(linkAddr{Addr: primary})

	oldLL, newLL := a("fe80::1:1"), a("fe80::2:2")
	picked6 := primaryRule{Current: oldLL, VirtualIPs: []netip.Prefix{netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("2001:db8::100/64")}}
	picked4 := primaryRule{Current: primary, VirtualIPs: fixed.VirtualIPs, Peers: []netip.Addr{a("192.0.2.2")}}
	for _, tc := range []struct {
		name    string
		rule    primaryRule
		st      linkState
		primary netip.Addr
		cause   Cause
		why     string
	}{
		{"usable", fixed, usable, primary, CauseUnknown, ""},
		{"deleted", fixed, linkState{}, primary, CauseInterfaceGone, "interface vrt0 gone"},
		{"down (IFF_UP cleared)", fixed, linkState{Exists: true, Carrier: true, Addrs: usable.Addrs}, primary, CauseInterfaceDown, "interface vrt0 down"},
		{"down and without carrier: down first", fixed, linkState{Exists: true}, primary, CauseInterfaceDown, "interface vrt0 down"},
		{"no carrier (NO-CARRIER)", fixed, linkState{Exists: true, Up: true, Addrs: usable.Addrs}, primary, CauseInterfaceDown, "interface vrt0 has no carrier"},
		{"renamed away", fixed, linkState{RenamedTo: "vrt9"}, primary, CauseInterfaceGone, "interface vrt0 gone (renamed to vrt9)"},
		{"dormant (802.1X not authorised)", fixed, linkState{Exists: true, Up: true, Carrier: true, Dormant: true, Addrs: usable.Addrs}, primary, CauseInterfaceDown,
			"interface vrt0 is dormant (waiting for authorisation or association, e.g. 802.1X or wifi)"},
		{"dormant and without carrier: carrier first", fixed, linkState{Exists: true, Up: true, Dormant: true}, primary, CauseInterfaceDown, "interface vrt0 has no carrier"},
		{"testing", fixed, linkState{Exists: true, Up: true, Carrier: true, Testing: true, Addrs: usable.Addrs}, primary, CauseInterfaceDown, "interface vrt0 is in testing mode"},
		{"primary address removed", fixed, with(), primary, CauseInterfaceDown, "interface vrt0 lacks the primary address 192.0.2.1"},
		{"primary address tentative", fixed, with(linkAddr{Addr: primary, Tentative: true}), primary, CauseInterfaceDown,
			"interface vrt0: the primary address 192.0.2.1 is tentative (duplicate address detection)"},
		{"primary address failed DAD (the kernel keeps it tentative too)", fixed, with(linkAddr{Addr: primary, Tentative: true, DADFailed: true}), primary, CauseInterfaceDown,
			"interface vrt0: the primary address 192.0.2.1 failed duplicate address detection (another host has it)"},
		{"configured primary gone, another address there: waits for it", fixed, with(linkAddr{Addr: a("192.0.2.9")}), primary, CauseInterfaceDown,
			"interface vrt0 lacks the primary address 192.0.2.1"},

		// A picked Primary follows the interface (issue 8: recreated with a new MAC address).
		{"picked link-local still there: kept, though another comes first", picked6, with(linkAddr{Addr: newLL}, linkAddr{Addr: oldLL}), oldLL, CauseUnknown, ""},
		{"recreated with a new MAC: the new link-local address", picked6,
			with(linkAddr{Addr: a("2001:db8::5")}, linkAddr{Addr: a("fe80::1")}, linkAddr{Addr: newLL}), newLL, CauseUnknown, ""},
		{"new link-local address still tentative: picked, waited for", picked6, with(linkAddr{Addr: newLL, Tentative: true}), newLL, CauseInterfaceDown,
			"interface vrt0: the primary address fe80::2:2 is tentative (duplicate address detection)"},
		{"a usable link-local address before a tentative one", picked6,
			with(linkAddr{Addr: a("fe80::3:3"), Tentative: true}, linkAddr{Addr: newLL}), newLL, CauseUnknown, ""},
		{"an address that failed DAD is never picked", picked6, with(linkAddr{Addr: a("fe80::3:3"), DADFailed: true, Tentative: true}), oldLL, CauseInterfaceDown,
			"interface vrt0 lacks the primary address fe80::1:1"},
		{"no link-local address yet (only global and virtual ones)", picked6,
			with(linkAddr{Addr: a("2001:db8::5")}, linkAddr{Addr: a("fe80::1")}), oldLL, CauseInterfaceDown, "interface vrt0 lacks the primary address fe80::1:1"},
		{"picked primary failed DAD: another one taken", picked6,
			with(linkAddr{Addr: oldLL, Tentative: true, DADFailed: true}, linkAddr{Addr: newLL}), newLL, CauseUnknown, ""},
		{"IPv4 renumbered: the new address, not a virtual one or a peer", picked4,
			with(linkAddr{Addr: a("192.0.2.100")}, linkAddr{Addr: a("192.0.2.2")}, linkAddr{Addr: a("192.0.2.7")}), a("192.0.2.7"), CauseUnknown, ""},
		{"IPv4: only an IPv6 address left", picked4, with(linkAddr{Addr: newLL}), primary, CauseInterfaceDown, "interface vrt0 lacks the primary address 192.0.2.1"},
		{"picked, interface gone: kept as it was", picked6, linkState{}, oldLL, CauseInterfaceGone, "interface vrt0 gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, c, why := linkVerdict("vrt0", tc.rule, tc.st)
			if p != tc.primary || c != tc.cause || why != tc.why {
				t.Errorf("linkVerdict(%+v, %+v) = %v, %v, %q; want %v, %v, %q", tc.rule, tc.st, p, c, why, tc.primary, tc.cause, tc.why)
			}
		})
	}
}
