package vrrp

import (
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
)

// A swap on the wire, as the appliance runs it: the Master resigns (priority-0 advert, VIP
// released), the passive Backup is told to take over; the old Master, of higher priority and
// preempting, leaves the new one be; and when the new Master resigns in turn, the old one
// (active) takes over by itself.
func TestRoutersSwapByResignAndTakeOver(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	cfgA := labConfig("vrt0", labA, 200, t.TempDir())
	cfgA.Logger = testLogger(t, "a")
	cfgB := labConfig("vrt1", labB, 100, t.TempDir())
	cfgB.Logger = testLogger(t, "b")
	na := dialNode(t, a, cfgA)
	nb := dialNode(t, b, cfgB)
	nb.r.SetPassive(true)
	na.waitEvent(t, 0, StateBackup, StateMaster, CauseMasterDown)
	poll.Until(t, 5*time.Second, "b follows a", func() bool { return nb.r.Status().MasterIP == labA.Addr() })

	ia, ib := na.eventCount(), nb.eventCount()
	na.r.Resign("swap")
	e := na.waitEvent(t, ia, StateMaster, StateBackup, CauseResigned)
	if e.Reason != "resigned: swap" {
		t.Errorf("a's event reason %q, want %q", e.Reason, "resigned: swap")
	}
	// b heard the priority-0 advert (it forgets the Master) but, passive, does not take over.
	poll.Until(t, 2*time.Second, "b heard a resign", func() bool { return !nb.r.Status().MasterIP.IsValid() })
	if a.hasAddr(t, "vrt0", labVIP) || b.hasAddr(t, "vrt1", labVIP) {
		t.Errorf("VIP on a %v, on b %v; want on neither before the takeover", a.hasAddr(t, "vrt0", labVIP), b.hasAddr(t, "vrt1", labVIP))
	}
	nb.r.TakeOver("swap")
	e = nb.waitEvent(t, ib, StateBackup, StateMaster, CauseTakeOver)
	if e.Reason != "takeover: swap" {
		t.Errorf("b's event reason %q, want %q", e.Reason, "takeover: swap")
	}
	poll.Until(t, time.Second, "b holds the VIP", func() bool { return b.hasAddr(t, "vrt1", labVIP) })
	poll.Until(t, 2*time.Second, "a follows b", func() bool { return na.r.Status().MasterIP == labB.Addr() })
	// Longer than a's Master_Down_Interval: a (200, preempt) does not take the role back.
	time.Sleep(MasterDownInterval(time.Second, 200) + time.Second)
	if s := na.r.Status(); s.State != StateBackup || !s.PreemptSuppressed || a.hasAddr(t, "vrt0", labVIP) {
		t.Errorf("a after the swap: %+v; want a Backup with preemption suppressed, without the VIP", s)
	}
	if got := len(na.eventsFrom(ia)); got != 1 {
		t.Errorf("a's events since resigning: %+v; want only the resignation", na.eventsFrom(ia))
	}

	// And back: b resigns; a, not passive, takes over by itself Skew_Time after the
	// priority-0 advert.
	ia, ib = na.eventCount(), nb.eventCount()
	nb.r.Resign("swap back")
	nb.waitEvent(t, ib, StateMaster, StateBackup, CauseResigned)
	na.waitEvent(t, ia, StateBackup, StateMaster, CausePriorityZero)
	poll.Until(t, time.Second, "a holds the VIP", func() bool { return a.hasAddr(t, "vrt0", labVIP) })
	poll.Until(t, time.Second, "b released the VIP", func() bool { return !b.hasAddr(t, "vrt1", labVIP) })
}
