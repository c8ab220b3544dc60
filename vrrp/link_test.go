package vrrp

import (
	"net/netip"
	"testing"
)

func TestLinkVerdict(t *testing.T) {
	primary := netip.MustParseAddr("192.0.2.1")
	usable := linkState{Exists: true, Up: true, Carrier: true, HasPrimary: true}
	for _, tc := range []struct {
		name  string
		st    linkState
		cause Cause
		why   string
	}{
		{"usable", usable, CauseUnknown, ""},
		{"deleted", linkState{}, CauseInterfaceGone, "interface vrt0 gone"},
		{"down (IFF_UP cleared)", linkState{Exists: true, Carrier: true, HasPrimary: true}, CauseInterfaceDown, "interface vrt0 down"},
		{"down and without carrier: down first", linkState{Exists: true}, CauseInterfaceDown, "interface vrt0 down"},
		{"no carrier (NO-CARRIER)", linkState{Exists: true, Up: true, HasPrimary: true}, CauseInterfaceDown, "interface vrt0 has no carrier"},
		{"primary address removed", linkState{Exists: true, Up: true, Carrier: true}, CauseInterfaceDown, "interface vrt0 lacks the primary address 192.0.2.1"},
		{"primary address tentative", linkState{Exists: true, Up: true, Carrier: true, HasPrimary: true, PrimaryTentative: true}, CauseInterfaceDown, "interface vrt0: the primary address 192.0.2.1 is tentative (duplicate address detection)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, why := linkVerdict("vrt0", primary, tc.st)
			if c != tc.cause || why != tc.why {
				t.Errorf("linkVerdict(%+v) = %v, %q; want %v, %q", tc.st, c, why, tc.cause, tc.why)
			}
		})
	}
}
