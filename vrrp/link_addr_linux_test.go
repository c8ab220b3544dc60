package vrrp

import (
	"testing"
	"time"
)

// The Primary address removed from a Master's interface: the Router leaves the protocol
// (without its own address it can neither send adverts nor win ties), woken by the address
// notification rather than its poll (linkPollInterval, 5 s); when the address is back it
// rejoins and, alone on the segment, becomes Master again.
func TestRouterFollowsPrimaryAddress(t *testing.T) {
	sw := newSwitch(t)
	a := newTestNS(t)
	plug(t, sw, "pa", a, "vrt0", labA)
	cfg := labConfig("vrt0", labA, 200, t.TempDir())
	cfg.Logger = testLogger(t, "a")
	na := dialNode(t, a, cfg)
	na.waitEvent(t, 0, StateBackup, StateMaster, CauseMasterDown)

	i := na.eventCount()
	removed := time.Now()
	if err := a.h.AddrDel(a.link(t, "vrt0"), netlinkAddr(labA)); err != nil {
		t.Fatal(err)
	}
	e := na.waitEvent(t, i, StateMaster, StateInitialize, CauseInterfaceDown)
	t.Logf("left master %v after the primary address was removed (poll every %v)", e.At.Sub(removed).Round(time.Millisecond), linkPollInterval(time.Second))
	if want := "interface vrt0 lacks the primary address 192.0.2.1"; e.Reason != want {
		t.Errorf("reason %q, want %q", e.Reason, want)
	}
	eventually(t, time.Second, "the VIP released", func() bool { return !a.hasAddr(t, "vrt0", labVIP) })

	i = na.eventCount()
	a.addAddr(t, "vrt0", labA)
	na.waitEvent(t, i, StateInitialize, StateBackup, CauseInterfaceBack)
	na.waitEvent(t, i, StateBackup, StateMaster, CauseMasterDown)
}
