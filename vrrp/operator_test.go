package vrrp

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// lastEvent is the rig's newest Event.
func (g *rig) lastEvent() Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.events) == 0 {
		return Event{}
	}
	return g.events[len(g.events)-1]
}

func (g *rig) checkEvent(from, to State, cause Cause, reason string) {
	g.t.Helper()
	e := g.lastEvent()
	if e.From != from || e.To != to || e.Cause != cause || e.Reason != reason {
		g.t.Errorf("last event %v->%v cause %q reason %q; want %v->%v cause %q reason %q",
			e.From, e.To, e.Cause, e.Reason, from, to, cause, reason)
	}
}

// Resign on the Master: priority-0 advert, addresses released, Backup; no preemption of a
// lower-priority Master afterwards; TakeOver makes it Master again at once.
func TestRouterResignAndTakeOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.start()
		rtSleep(rtDown100 + 500*time.Millisecond)
		g.take()

		go g.r.Resign("maintenance")
		synctest.Wait()
		g.expect(
			"4.109375s advert prio=0",
			"4.109375s remove [192.0.2.100/24]",
			"4.109375s event master->backup",
		)
		g.checkEvent(StateMaster, StateBackup, CauseResigned, "resigned: maintenance")
		if s := g.r.Status(); s.State != StateBackup || !s.PreemptSuppressed || len(s.VirtualIPs) != 0 {
			t.Errorf("after Resign: %+v; want backup, preemption suppressed, no VIP", s)
		}
		go g.r.Resign("again")
		synctest.Wait()
		g.expect() // a Backup does not resign

		// The peer, of lower priority, takes over; this node (preempt on) leaves it be.
		for range 10 {
			rtSleep(time.Second)
			g.deliver(rtAdvert(t, rtPeer, 50, rtVIP))
		}
		g.expect()

		go g.r.TakeOver("swap back")
		synctest.Wait()
		g.expect(
			"14.109375s add [192.0.2.100/24]",
			"14.109375s advert prio=100",
			"14.109375s garp [192.0.2.100]",
			"14.109375s event backup->master",
		)
		g.checkEvent(StateBackup, StateMaster, CauseTakeOver, "takeover: swap back")
		if s := g.r.Status(); s.State != StateMaster || s.PreemptSuppressed {
			t.Errorf("after TakeOver: %+v; want master, preemption no longer suppressed", s)
		}
		go g.r.TakeOver("again")
		synctest.Wait()
		g.expect() // a Master does not take over
		g.stop()
	})
}

// A passive node starts as Backup even as the address owner and never takes over on its own,
// not even when the Master resigns; leaving passive mode starts Master_Down_Timer.
func TestRouterPassive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := rtConfig()
		cfg.Priority = 255
		g := newRig(t, cfg)
		g.r.SetPassive(true)
		g.start()
		g.expect("0s event initialize->backup")
		if s := g.r.Status(); s.State != StateBackup || !s.Passive {
			t.Errorf("after start: %+v; want a passive backup", s)
		}
		for range 5 {
			rtSleep(time.Second)
			g.deliver(rtAdvert(t, rtPeer, 100, rtVIP))
		}
		g.deliver(rtAdvert(t, rtPeer, 0, rtVIP))
		rtSleep(time.Minute)
		g.expect()

		go g.r.SetPassive(false)
		synctest.Wait()
		if g.r.Status().Passive {
			t.Error("Status().Passive after SetPassive(false)")
		}
		// Master_Down_Interval(255) = 3 s + 1/256 s, from now.
		rtSleep(3*time.Second + 3906250*time.Nanosecond - time.Nanosecond)
		g.expect()
		rtSleep(time.Nanosecond)
		g.expect(
			"1m8.00390625s add [192.0.2.100/24]",
			"1m8.00390625s advert prio=255",
			"1m8.00390625s garp [192.0.2.100]",
			"1m8.00390625s event backup->master",
		)
		g.checkEvent(StateBackup, StateMaster, CauseMasterDown, "no advert within Master_Down_Interval of leaving passive mode")
		g.stop()
	})
}

// Reload validates first, then applies priority, preempt and the gratuitous ARP settings on
// the Run goroutine.
func TestRouterReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.start()
		g.take()
		for _, bad := range []RuntimeConfig{
			{Priority: 0},
			{Priority: 100, GARPCount: -1},
			{Priority: 100, GARPInterval: -time.Second},
		} {
			if err := g.r.Reload(bad); !errors.Is(err, ErrRuntimeConfig) {
				t.Errorf("Reload(%+v) = %v, want ErrRuntimeConfig", bad, err)
			}
		}
		synctest.Wait()
		if s := g.r.Status(); s.Priority != 100 || !s.Preempt {
			t.Errorf("after invalid reloads: %+v; want priority 100, preempt on", s)
		}

		rtSleep(time.Second)
		if err := g.r.Reload(RuntimeConfig{Priority: 50, Preempt: false, GARPCount: 2, GARPInterval: 500 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if s := g.r.Status(); s.Priority != 50 || s.Preempt {
			t.Errorf("after Reload: %+v; want priority 50, preempt off", s)
		}
		// Without preemption a lower Master's advert resets the timer:
		// Master_Down_Interval(50) = 3 s + 206/256 s from it.
		g.deliver(rtAdvert(t, rtPeer, 20, rtVIP))
		rtSleep(3*time.Second + 804687500*time.Nanosecond)
		g.expect(
			"4.8046875s add [192.0.2.100/24]",
			"4.8046875s advert prio=50",
			"4.8046875s garp [192.0.2.100]",
			"4.8046875s event backup->master",
		)
		rtSleep(time.Second)
		g.expect(
			"5.3046875s garp [192.0.2.100]", // the second and last, 500 ms after the first
			"5.8046875s advert prio=50",
		)
		// A new priority is advertised at once.
		if err := g.r.Reload(RuntimeConfig{Priority: 60}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		g.expect("5.8046875s advert prio=60")
		g.stop()
	})
}

// fakeLink is a linkWatcher whose verdict the test sets.
type fakeLink struct {
	mu    sync.Mutex
	cause Cause
	why   string
	wake  chan struct{}
}

func (l *fakeLink) check() (Cause, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cause, l.why
}

func (l *fakeLink) changed() <-chan struct{} { return l.wake }

// set changes the verdict; with notify the Router is woken as by a netlink notification,
// without it only the poll (once per advert interval) sees the change.
func (l *fakeLink) set(c Cause, why string, notify bool) {
	l.mu.Lock()
	l.cause, l.why = c, why
	l.mu.Unlock()
	if notify {
		l.wake <- struct{}{}
	}
	synctest.Wait()
}

// The interface gone: the Master releases the addresses and sends nothing until the interface
// is back, then rejoins as Backup; a change seen only by the poll takes effect at the next
// advert interval.
func TestRouterInterfaceFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		link := &fakeLink{wake: make(chan struct{})}
		g.r.link = link
		g.start()
		rtSleep(rtDown100 + 300*time.Millisecond)
		g.take()

		link.set(CauseInterfaceGone, "interface eth-test gone", true)
		g.expect(
			"3.909375s remove [192.0.2.100/24]",
			"3.909375s event master->initialize",
		)
		g.checkEvent(StateMaster, StateInitialize, CauseInterfaceGone, "interface eth-test gone")
		if s := g.r.Status(); s.State != StateInitialize || s.Fault != "interface eth-test gone" || len(s.VirtualIPs) != 0 {
			t.Errorf("after the fault: %+v", s)
		}
		rtSleep(time.Minute)
		g.expect() // no advert, no takeover, nothing
		go g.r.TakeOver("operator")
		synctest.Wait()
		g.expect() // not while faulted

		// Back, seen by the poll only: the Router's ticker runs on whole seconds since Run.
		link.set(CauseUnknown, "", false)
		g.expect()
		rtSleep(91 * time.Millisecond) // up to 64 s, the next tick
		g.expect("1m4s event initialize->backup")
		g.checkEvent(StateInitialize, StateBackup, CauseInterfaceBack, "interface eth-test back")
		if s := g.r.Status(); s.Fault != "" || s.State != StateBackup {
			t.Errorf("after the interface came back: %+v", s)
		}
		rtSleep(rtDown100)
		g.expect(
			"1m7.609375s add [192.0.2.100/24]",
			"1m7.609375s advert prio=100",
			"1m7.609375s garp [192.0.2.100]",
			"1m7.609375s event backup->master",
		)
		g.stop()
	})
}

// GARPRefresh: after the burst a Master announces its addresses once every GARPRefresh, until
// it leaves Master; a Reload changes the refresh at once and 0 turns it off.
func TestRouterGARPRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := rtConfig()
		cfg.GARPCount, cfg.GARPRefresh = 2, 10*time.Second
		g := newRig(t, cfg)
		g.start()
		rtSleep(rtDown100)
		g.expect(
			"0s event initialize->backup",
			"3.609375s add [192.0.2.100/24]",
			"3.609375s advert prio=100",
			"3.609375s garp [192.0.2.100]",
			"3.609375s event backup->master",
		)
		rtSleep(25 * time.Second)
		var garps []string
		for _, l := range g.take() {
			if strings.Contains(l, "garp") {
				garps = append(garps, l)
			}
		}
		want := []string{
			"3.809375s garp [192.0.2.100]",  // the burst's second
			"13.809375s garp [192.0.2.100]", // then every 10 s
			"23.809375s garp [192.0.2.100]",
		}
		if diff := cmp.Diff(want, garps); diff != "" {
			t.Errorf("gratuitous ARPs (-want +got):\n%s", diff)
		}

		// 28.609375 s now; a reload to 2.2 s (not a multiple of the advert interval, so that no
		// round and advert are due at the same instant): the next round 2.2 s later, and so on.
		if err := g.r.Reload(RuntimeConfig{Priority: 100, Preempt: true, GARPCount: 2, GARPRefresh: 2200 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		rtSleep(4*time.Second + 500*time.Millisecond)
		g.expect(
			"29.609375s advert prio=100",
			"30.609375s advert prio=100",
			"30.809375s garp [192.0.2.100]",
			"31.609375s advert prio=100",
			"32.609375s advert prio=100",
			"33.009375s garp [192.0.2.100]",
		)
		// Off: adverts only.
		if err := g.r.Reload(RuntimeConfig{Priority: 100, Preempt: true}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		rtSleep(3 * time.Second)
		g.expect(
			"33.609375s advert prio=100",
			"34.609375s advert prio=100",
			"35.609375s advert prio=100",
		)
		// Back on, then preempted: no round after leaving Master.
		if err := g.r.Reload(RuntimeConfig{Priority: 100, Preempt: true, GARPRefresh: time.Second}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		g.deliver(rtAdvert(t, rtPeer, 200, rtVIP))
		g.expect(
			"36.109375s remove [192.0.2.100/24]",
			"36.109375s event master->backup",
		)
		rtSleep(3 * time.Second)
		g.expect()
		g.stop()
		g.take()
	})
}
