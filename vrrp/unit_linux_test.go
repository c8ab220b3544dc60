package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
)

// unitNode is one Unit running in a namespace, with its merged event stream.
type unitNode struct {
	u      *Unit
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	role   []Event       // the unit's role changes
	member []MemberEvent // every member's transitions
}

// dialUnit dials a Unit of cfgs inside n and runs it until the test ends.
// logger names the logger of the unit (name) and of each member (name/interface/vrid); nil
// discards the logs.
func dialUnit(t testing.TB, n *testNS, name string, cfgs []Config, logger func(name string) *slog.Logger) *unitNode {
	t.Helper()
	nd := &unitNode{done: make(chan error, 1)}
	if logger == nil {
		logger = func(string) *slog.Logger { return nil }
	}
	for i := range cfgs {
		cfgs[i].Logger = logger(fmt.Sprintf("%s/%s/%d", name, cfgs[i].Interface, cfgs[i].VRID))
	}
	u, err := NewUnit(UnitConfig{
		Logger: logger(name),
		OnEvent: func(e Event) {
			nd.mu.Lock()
			nd.role = append(nd.role, e)
			nd.mu.Unlock()
		},
		OnMemberEvent: func(e MemberEvent) {
			nd.mu.Lock()
			nd.member = append(nd.member, e)
			nd.mu.Unlock()
		},
	}, cfgs, func(c Config) (m Member, err error) {
		n.do(t, func() { m, err = Dial(c) })
		return m, err
	})
	if err != nil {
		t.Fatalf("NewUnit in %s: %v", n.name, err)
	}
	nd.u = u
	ctx, cancel := context.WithCancel(context.Background())
	nd.cancel = cancel
	go func() { nd.done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-nd.done:
			if err != nil {
				t.Errorf("%s: Run: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Run did not return within 10 s of cancel", name)
		}
	})
	return nd
}

func (nd *unitNode) roleCount() int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return len(nd.role)
}

// waitRole waits for a role change to `to` from index i on and returns it.
func (nd *unitNode) waitRole(t testing.TB, i int, to State) Event {
	t.Helper()
	var got Event
	poll.Until(t, 15*time.Second, "unit role "+to.String(), func() bool {
		nd.mu.Lock()
		defer nd.mu.Unlock()
		for _, e := range nd.role[min(i, len(nd.role)):] {
			if e.To == to {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

func (nd *unitNode) memberLog() []string {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	var out []string
	for _, e := range nd.member {
		out = append(out, fmt.Sprintf("%s %v->%v (%v)", e.Name, e.From, e.To, e.Cause))
	}
	return out
}

var (
	wanA   = netip.MustParsePrefix("198.51.100.1/24")
	wanB   = netip.MustParsePrefix("198.51.100.2/24")
	wanVIP = netip.MustParsePrefix("198.51.100.100/24")
)

// Issue 8 section 2: two groups on two interfaces (a LAN and a WAN switch) move together.
// Node a (priority 200 in both) is Master of both; its LAN switch port loses carrier: a's LAN
// group leaves the protocol, the unit resigns the WAN group (priority 0), and b takes both,
// the WAN group at Skew_Time and the LAN group with it, not a Master_Down_Interval later.
// When the port is back a rejoins and, preempting, takes both back.
func TestUnitMovesTogether(t *testing.T) {
	lan, wan := newSwitch(t), newSwitch(t)
	a, b := newTestNS(t), newTestNS(t)
	plug(t, lan, "la", a, "lan0", labA)
	plug(t, lan, "lb", b, "lan0", labB)
	plug(t, wan, "wa", a, "wan0", wanA)
	plug(t, wan, "wb", b, "wan0", wanB)

	groups := func(p netip.Prefix, q netip.Prefix, prio uint8) []Config {
		g1 := labConfig("lan0", p, prio, t.TempDir())
		g2 := labConfig("wan0", q, prio, t.TempDir())
		g2.VRID, g2.VirtualIPs = 52, []netip.Prefix{wanVIP}
		return []Config{g1, g2}
	}
	logger := func(name string) *slog.Logger { return testLogger(t, name) }
	na := dialUnit(t, a, "a", groups(labA, wanA, 200), logger)
	nb := dialUnit(t, b, "b", groups(labB, wanB, 100), logger)
	na.waitRole(t, 0, StateMaster)
	nb.waitRole(t, 0, StateBackup)
	poll.Until(t, 5*time.Second, "a holds both VIPs", func() bool {
		return a.hasAddr(t, "lan0", labVIP) && a.hasAddr(t, "wan0", wanVIP)
	})
	// A member publishes its status after its OnEvent (the unit's role change) returns.
	poll.Until(t, time.Second, "a's unit status: master holding 2 VIPs", func() bool {
		s := na.u.Status()
		return s.State == StateMaster && len(s.VirtualIPs) == 2
	})

	ia, ib := na.roleCount(), nb.roleCount()
	cut := time.Now()
	if err := lan.h.LinkSetDown(lan.link(t, "la")); err != nil {
		t.Fatal(err)
	}
	e := na.waitRole(t, ia, StateInitialize)
	if e.Cause != CauseInterfaceDown || e.Reason != "group lan0/51: interface lan0 has no carrier" {
		t.Errorf("a's role change: %+v; want interface down, named", e)
	}
	eb := nb.waitRole(t, ib, StateMaster)
	took := eb.At.Sub(cut)
	t.Logf("b's unit master %v after a's LAN carrier loss (cause %v: %s)", took.Round(time.Millisecond), eb.Cause, eb.Reason)
	// The WAN group's resign (priority 0) brings b's WAN group in at Skew_Time; the LAN group
	// follows by TakeOver rather than after its own Master_Down_Interval (3.6 s).
	if eb.Cause != CausePriorityZero {
		t.Errorf("b took over by %v (%s); want the WAN group's priority-0 advert, the LAN group with it", eb.Cause, eb.Reason)
	}
	poll.Until(t, 5*time.Second, "b holds both VIPs, a none", func() bool {
		return b.hasAddr(t, "lan0", labVIP) && b.hasAddr(t, "wan0", wanVIP) && !a.hasAddr(t, "wan0", wanVIP) && !a.hasAddr(t, "lan0", labVIP)
	})
	poll.Until(t, time.Second, "a's unit status: initialize with the LAN fault and no VIP", func() bool {
		s := na.u.Status()
		return s.State == StateInitialize && s.Fault == "group lan0/51: interface lan0 has no carrier" && len(s.VirtualIPs) == 0
	})
	if got := nb.memberLog(); !slices.Contains(got, "lan0/51 backup->master (takeover)") {
		t.Errorf("b's members: %v; want the LAN group taken over by the unit", got)
	}

	// Back: a rejoins as Backup and preempts both groups (priority 200, preempt).
	ia, ib = na.roleCount(), nb.roleCount()
	if err := lan.h.LinkSetUp(lan.link(t, "la")); err != nil {
		t.Fatal(err)
	}
	na.waitRole(t, ia, StateMaster)
	nb.waitRole(t, ib, StateBackup)
	poll.Until(t, 5*time.Second, "a holds both VIPs again, b none", func() bool {
		return a.hasAddr(t, "lan0", labVIP) && a.hasAddr(t, "wan0", wanVIP) && !b.hasAddr(t, "wan0", wanVIP) && !b.hasAddr(t, "lan0", labVIP)
	})
	t.Logf("a's members: %v", na.memberLog())
	t.Logf("b's members: %v", nb.memberLog())
}
