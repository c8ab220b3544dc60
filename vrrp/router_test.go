package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redundantd/redundantd/testlab/syncbuf"
)

// The Router tests run in a synctest bubble: time is fake and advances only when every
// goroutine of the bubble is blocked, so each RFC timer is asserted to the nanosecond.

var (
	rtPrimary = netip.MustParseAddr("192.0.2.1")
	rtPeer    = netip.MustParseAddr("192.0.2.2")
	rtVIP     = netip.MustParsePrefix("192.0.2.100/24")
	rtVIP2    = netip.MustParsePrefix("192.0.2.101/32")
)

// journal records what the fakes were asked to do, in order, with the fake time elapsed since
// the bubble started.
type journal struct {
	start time.Time
	mu    sync.Mutex
	lines []string
}

func newJournal() *journal { return &journal{start: time.Now()} }

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, fmt.Sprintf("%v ", time.Since(j.start))+fmt.Sprintf(format, args...))
}

// take returns the lines recorded since the last take.
func (j *journal) take() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	l := j.lines
	j.lines = nil
	return l
}

type fakeConn struct {
	j      *journal
	in     chan Inbound
	errs   chan error // nil unless a test injects receive errors
	closed chan struct{}
	once   sync.Once
}

func (c *fakeConn) Receive() (Inbound, error) {
	select {
	case in := <-c.in:
		return in, nil
	case err := <-c.errs:
		c.j.add("receive error")
		return Inbound{}, err
	case <-c.closed:
		return Inbound{}, net.ErrClosed
	}
}

func (c *fakeConn) Send(b []byte, dst netip.Addr) error {
	var a Advertisement
	if err := a.Unmarshal(b, PseudoHeader{Src: rtPrimary, Dst: dst}); err != nil {
		c.j.add("send unparsable advert: %v", err)
		return nil
	}
	if dst != vrrpGroup {
		c.j.add("advert prio=%d v%d to %v", a.Priority, a.Version, dst)
		return nil
	}
	c.j.add("advert prio=%d", a.Priority)
	return nil
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed); c.j.add("conn closed") })
	return nil
}

type fakeAddresser struct {
	j           *journal
	failAdds    int // the next failAdds calls to Add fail
	failRemoves int // the next failRemoves calls to Remove fail
}

func (a *fakeAddresser) Add(vips []netip.Prefix) error {
	if a.failAdds > 0 {
		a.failAdds--
		a.j.add("add %v failed", vips)
		return errors.New("netlink: operation not permitted")
	}
	a.j.add("add %v", vips)
	return nil
}

func (a *fakeAddresser) Remove(vips []netip.Prefix) error {
	if a.failRemoves > 0 {
		a.failRemoves--
		a.j.add("remove %v failed", vips)
		return errors.New("netlink: no buffer space available")
	}
	a.j.add("remove %v", vips)
	return nil
}

type fakeAnnouncer struct{ j *journal }

func (f *fakeAnnouncer) Announce(ips []netip.Addr) error {
	f.j.add("garp %v", ips)
	return nil
}

// rig is one Router over fakes, running in the current bubble.
type rig struct {
	t      *testing.T
	j      *journal
	conn   *fakeConn
	addrs  *fakeAddresser
	r      *Router
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []Event
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	j := newJournal()
	g := &rig{
		t:     t,
		j:     j,
		conn:  &fakeConn{j: j, in: make(chan Inbound), closed: make(chan struct{})},
		addrs: &fakeAddresser{j: j},
		done:  make(chan error, 1),
	}
	cfg.OnEvent = func(e Event) {
		j.add("event %v->%v", e.From, e.To)
		g.mu.Lock()
		g.events = append(g.events, e)
		g.mu.Unlock()
	}
	r, err := New(cfg, g.conn, g.addrs, &fakeAnnouncer{j: j})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	g.r = r
	return g
}

func (g *rig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() { g.done <- g.r.Run(ctx) }()
	synctest.Wait()
}

// stop cancels Run and checks that it returns nil without any fake time passing.
func (g *rig) stop() {
	g.t.Helper()
	before := time.Now()
	g.cancel()
	synctest.Wait()
	select {
	case err := <-g.done:
		if err != nil {
			g.t.Errorf("Run: %v", err)
		}
	default:
		g.t.Fatal("Run did not return after cancel")
	}
	if d := time.Since(before); d != 0 {
		g.t.Errorf("shutdown took %v of fake time, want 0", d)
	}
}

// deliver hands a packet to the Router, as if it arrived now, and waits until it is handled.
func (g *rig) deliver(in Inbound) {
	g.conn.in <- in
	synctest.Wait()
}

// sleep advances fake time by d, letting every timer due in between fire.
func rtSleep(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func (g *rig) take() []string { return g.j.take() }

func (g *rig) expect(want ...string) {
	g.t.Helper()
	if diff := cmp.Diff(want, g.j.take()); diff != "" {
		g.t.Errorf("journal (-want +got):\n%s", diff)
	}
}

func rtConfig() Config {
	return Config{
		Interface:      "eth-test",
		VRID:           51,
		Priority:       100,
		AdvertInterval: time.Second,
		Preempt:        true,
		Primary:        rtPrimary,
		VirtualIPs:     []netip.Prefix{rtVIP},
	}
}

// rtAdvert is a valid advert from a peer, as the Conn would deliver it.
func rtAdvert(t testing.TB, src netip.Addr, prio uint8, vips ...netip.Prefix) Inbound {
	t.Helper()
	a := Advertisement{Version: 2, Type: TypeAdvertisement, VRID: 51, Priority: prio, Interval: time.Second}
	for _, v := range vips {
		a.Addresses = append(a.Addresses, v.Addr())
	}
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return Inbound{Src: src, Dst: vrrpGroup, TTL: 255, Payload: b}
}

// Priority 100: Master_Down_Interval = 3 s + 156/256 s = 3.609375 s.
const rtDown100 = 3*time.Second + 609375*time.Microsecond

func TestRouterTakesOverAdvertisesAndResigns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.start()
		g.expect("0s event initialize->backup")
		if s := g.r.Status(); s.State != StateBackup || len(s.VirtualIPs) != 0 {
			t.Errorf("after start: state %v, VIPs %v; want backup without VIPs", s.State, s.VirtualIPs)
		}

		rtSleep(rtDown100 - time.Nanosecond)
		g.expect() // nothing before Master_Down_Interval
		rtSleep(time.Nanosecond)
		g.expect(
			"3.609375s add [192.0.2.100/24]",
			"3.609375s advert prio=100",
			"3.609375s garp [192.0.2.100]",
			"3.609375s event backup->master",
		)
		s := g.r.Status()
		if s.State != StateMaster || s.MasterIP != rtPrimary || !slices.Equal(s.VirtualIPs, []netip.Prefix{rtVIP}) {
			t.Errorf("after takeover: %+v; want master %v holding %v", s, rtPrimary, rtVIP)
		}

		// The rest of the gratuitous ARPs go out 200 ms apart, interleaved with the adverts.
		rtSleep(2 * time.Second)
		g.expect(
			"3.809375s garp [192.0.2.100]",
			"4.009375s garp [192.0.2.100]",
			"4.209375s garp [192.0.2.100]",
			"4.409375s garp [192.0.2.100]",
			"4.609375s advert prio=100",
			"5.609375s advert prio=100",
		)

		rtSleep(500 * time.Millisecond)
		g.stop()
		g.expect(
			"6.109375s advert prio=0",
			"6.109375s remove [192.0.2.100/24]",
			"6.109375s event master->initialize",
			"6.109375s conn closed",
		)
		if s := g.r.Status(); s.State != StateInitialize || len(s.VirtualIPs) != 0 {
			t.Errorf("after shutdown: state %v, VIPs %v", s.State, s.VirtualIPs)
		}
		if got, want := g.r.Status().Adverts, (AdvertCounts{Sent: 4, SentPriorityZero: 1}); got != want {
			t.Errorf("Adverts = %+v, want %+v", got, want)
		}
	})
}

func TestRouterFollowsMasterAndTakesOverAfterResign(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.start()
		g.expect("0s event initialize->backup")

		// A Master advertising every second keeps this Backup quiet for as long as it lasts.
		for range 10 {
			rtSleep(time.Second)
			g.deliver(rtAdvert(t, rtPeer, 200, rtVIP))
		}
		g.expect()
		if s := g.r.Status(); s.State != StateBackup || s.MasterIP != rtPeer {
			t.Errorf("state %v, master %v; want backup following %v", s.State, s.MasterIP, rtPeer)
		}

		// The Master resigns: take over after Skew_Time(100) = 0.609375 s, not
		// Master_Down_Interval.
		rtSleep(300 * time.Millisecond)
		g.deliver(rtAdvert(t, rtPeer, 0, rtVIP))
		rtSleep(609375*time.Microsecond - time.Nanosecond)
		g.expect()
		rtSleep(time.Nanosecond)
		g.expect(
			"10.909375s add [192.0.2.100/24]",
			"10.909375s advert prio=100",
			"10.909375s garp [192.0.2.100]",
			"10.909375s event backup->master",
		)
		if got, want := g.r.Status().Adverts, (AdvertCounts{Sent: 1, Received: 11, ReceivedPriorityZero: 1}); got != want {
			t.Errorf("Adverts = %+v, want %+v", got, want)
		}
		g.stop()
	})
}

func TestRouterStepsDownForHigherPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.start()
		rtSleep(rtDown100)
		g.take()

		// A higher-priority router preempts in the middle of the ARP burst: the addresses go
		// and no further gratuitous ARP is sent.
		rtSleep(300 * time.Millisecond)
		g.deliver(rtAdvert(t, rtPeer, 150, rtVIP))
		g.expect(
			"3.809375s garp [192.0.2.100]",
			"3.909375s remove [192.0.2.100/24]",
			"3.909375s event master->backup",
		)
		rtSleep(2 * time.Second)
		g.expect()
		if s := g.r.Status(); s.State != StateBackup || s.MasterIP != rtPeer || len(s.VirtualIPs) != 0 {
			t.Errorf("after preemption: %+v", s)
		}

		// A Backup shuts down without sending anything and without touching addresses.
		g.stop()
		g.expect("5.909375s event backup->initialize", "5.909375s conn closed")

		g.mu.Lock()
		defer g.mu.Unlock()
		var got []string
		for _, e := range g.events {
			got = append(got, fmt.Sprintf("%v->%v at %v master=%v err=%v", e.From, e.To, e.At.Sub(g.j.start), e.MasterIP, e.Err))
		}
		want := []string{
			"initialize->backup at 0s master=invalid IP err=<nil>",
			"backup->master at 3.609375s master=192.0.2.1 err=<nil>",
			"master->backup at 3.909375s master=192.0.2.2 err=<nil>",
			"backup->initialize at 5.909375s master=invalid IP err=<nil>",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

// A Master that hears a Master it outranks (a healed split brain) stays Master, advertises at
// once and announces its addresses again with a fresh burst of gratuitous ARPs; the lower
// Master advertising again during the burst does not stack a second one.
func TestRouterReassertsAfterSplitBrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.start()
		rtSleep(rtDown100)
		rtSleep(1500 * time.Millisecond) // the takeover burst is over
		g.take()

		g.deliver(rtAdvert(t, rtPeer, 50, rtVIP))
		g.expect(
			"5.109375s advert prio=100",
			"5.109375s garp [192.0.2.100]",
		)
		rtSleep(300 * time.Millisecond)
		g.deliver(rtAdvert(t, rtPeer, 50, rtVIP))
		rtSleep(time.Second)
		g.expect(
			"5.309375s garp [192.0.2.100]",
			"5.409375s advert prio=100",
			"5.509375s garp [192.0.2.100]",
			"5.609375s advert prio=100",
			"5.709375s garp [192.0.2.100]",
			"5.909375s garp [192.0.2.100]",
		)
		if s := g.r.Status(); s.State != StateMaster || !slices.Equal(s.VirtualIPs, []netip.Prefix{rtVIP}) || s.Transitions != 2 {
			t.Errorf("after the other Master's adverts: %+v; want still master with %v", s, rtVIP)
		}
		g.stop()
	})
}

// An invalid packet must change nothing: not the state, not the Backup's down timer, not the
// Master's advert timing. Each is counted under its reason.
func TestRouterInvalidPacketsChangeNothing(t *testing.T) {
	corrupt := func(in Inbound) Inbound {
		in.Payload[7] ^= 0xff // checksum
		return in
	}
	bad := []struct {
		name string
		in   func(t *testing.T) Inbound
	}{
		{"ttl", func(t *testing.T) Inbound { in := rtAdvert(t, rtPeer, 200, rtVIP); in.TTL = 254; return in }},
		{"checksum", func(t *testing.T) Inbound { return corrupt(rtAdvert(t, rtPeer, 200, rtVIP)) }},
		{"length", func(t *testing.T) Inbound {
			in := rtAdvert(t, rtPeer, 200, rtVIP)
			in.Payload = in.Payload[:5]
			return in
		}},
		{"addresses", func(t *testing.T) Inbound { return rtAdvert(t, rtPeer, 200, rtVIP2) }},
		{"own", func(t *testing.T) Inbound { return rtAdvert(t, rtPrimary, 200, rtVIP) }},
	}
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.start()
		g.take()
		// As Backup: garbage every 500 ms does not delay the takeover by a nanosecond.
		for i := range 7 {
			rtSleep(500 * time.Millisecond)
			g.deliver(bad[i%len(bad)].in(t))
		}
		g.expect()
		rtSleep(rtDown100 - 3500*time.Millisecond)
		g.expect(
			"3.609375s add [192.0.2.100/24]",
			"3.609375s advert prio=100",
			"3.609375s garp [192.0.2.100]",
			"3.609375s event backup->master",
		)
		// As Master: a higher priority in an invalid packet is no reason to step down, and
		// the adverts stay on their one-second grid.
		for _, b := range bad {
			rtSleep(100 * time.Millisecond)
			g.deliver(b.in(t))
		}
		rtSleep(time.Second - 500*time.Millisecond)
		want := []string{}
		for _, l := range g.j.take() {
			if !strings.Contains(l, "garp") {
				want = append(want, l)
			}
		}
		if diff := cmp.Diff([]string{"4.609375s advert prio=100"}, want); diff != "" {
			t.Errorf("journal as Master (-want +got):\n%s", diff)
		}
		s := g.r.Status()
		if s.State != StateMaster || s.Transitions != 2 {
			t.Errorf("state %v after %d transitions; want master after 2", s.State, s.Transitions)
		}
		wantDropped := map[string]uint64{"ttl": 3, "checksum": 3, "length": 2, "addresses": 2, "own": 2}
		if diff := cmp.Diff(wantDropped, s.Dropped); diff != "" {
			t.Errorf("Dropped (-want +got):\n%s", diff)
		}
		g.stop()
	})
}

func TestRouterSetPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.start()
		rtSleep(rtDown100 + time.Second)
		g.take()

		// Lowered from another goroutine: the Master advertises the new priority at once and
		// its advert timer restarts from there.
		go g.r.SetPriority(50)
		synctest.Wait()
		g.expect("4.609375s advert prio=50")
		if p := g.r.Status().Priority; p != 50 {
			t.Errorf("Status().Priority = %d, want 50", p)
		}
		// A Backup with priority 100 (> 50, preempting) therefore takes over, and this one
		// steps down on its first advert.
		rtSleep(time.Second)
		g.deliver(rtAdvert(t, rtPeer, 100, rtVIP))
		got := g.j.take()
		if want := []string{
			"5.609375s advert prio=50",
			"5.609375s remove [192.0.2.100/24]",
			"5.609375s event master->backup",
		}; !cmp.Equal(want, got) {
			t.Errorf("journal (-want +got):\n%s", cmp.Diff(want, got))
		}
		g.stop()
	})
}

func TestRouterSetPriorityBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.r.SetPriority(254)
		g.start()
		// Priority 254's Master_Down_Interval is 3 s + 2/256 s.
		rtSleep(3*time.Second + 7812500*time.Nanosecond)
		got := g.j.take()
		if len(got) < 2 || !slices.Contains(got, "3.0078125s advert prio=254") {
			t.Errorf("journal %q: want a takeover at 3.0078125s with priority 254", got)
		}
		g.stop()
	})
}

// A failed Add is reported in the Event, retried once per advert interval, and gratuitous
// ARP waits until the addresses are really there.
func TestRouterRetriesFailedInstall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.addrs.failAdds = 2
		g.start()
		rtSleep(rtDown100)
		g.expect(
			"0s event initialize->backup",
			"3.609375s add [192.0.2.100/24] failed",
			"3.609375s advert prio=100",
			"3.609375s event backup->master",
		)
		if s := g.r.Status(); s.State != StateMaster || len(s.VirtualIPs) != 0 {
			t.Errorf("after failed install: state %v, VIPs %v; want master holding nothing", s.State, s.VirtualIPs)
		}
		rtSleep(2*time.Second + 200*time.Millisecond)
		g.expect(
			"4.609375s advert prio=100",
			"4.609375s add [192.0.2.100/24] failed",
			"5.609375s advert prio=100",
			"5.609375s add [192.0.2.100/24]",
			"5.609375s garp [192.0.2.100]",
			"5.809375s garp [192.0.2.100]",
		)
		if s := g.r.Status(); !slices.Equal(s.VirtualIPs, []netip.Prefix{rtVIP}) {
			t.Errorf("after retry: VIPs %v", s.VirtualIPs)
		}
		g.mu.Lock()
		if len(g.events) != 2 || g.events[1].Err == nil {
			t.Errorf("events %+v: want the takeover to carry the Add error", g.events)
		}
		g.mu.Unlock()
		g.stop()
	})
}

// A failed Remove leaves a Backup holding the VIP beside the new Master: it is retried once
// per advertisement interval until it succeeds.
func TestRouterRetriesFailedRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.addrs.failRemoves = 1
		g.start()
		rtSleep(rtDown100 + time.Second)
		g.take()
		g.deliver(rtAdvert(t, rtPeer, 200, rtVIP))
		g.expect("4.609375s remove [192.0.2.100/24] failed", "4.609375s event master->backup")
		// Retries ride on the next step at least an interval later: the Master's adverts.
		rtSleep(500 * time.Millisecond)
		g.deliver(rtAdvert(t, rtPeer, 200, rtVIP))
		g.expect()
		rtSleep(500 * time.Millisecond)
		g.deliver(rtAdvert(t, rtPeer, 200, rtVIP))
		g.expect("5.609375s remove [192.0.2.100/24]")
		g.stop()
		g.expect("5.609375s event backup->initialize", "5.609375s conn closed")
	})
}

// flushingAddresser journals Flush calls, like the production Addresser's fsync.
type flushingAddresser struct{ *fakeAddresser }

func (f flushingAddresser) Flush() error {
	f.j.add("flush")
	return nil
}

// An Addresser's Flush runs after the takeover's addresses, gratuitous ARP and event, never
// before them.
func TestRouterFlushesAfterTheStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newJournal()
		conn := &fakeConn{j: j, in: make(chan Inbound), closed: make(chan struct{})}
		cfg := rtConfig()
		cfg.OnEvent = func(e Event) { j.add("event %v->%v", e.From, e.To) }
		r, err := New(cfg, conn, flushingAddresser{&fakeAddresser{j: j}}, &fakeAnnouncer{j: j})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(rtDown100)
		synctest.Wait()
		want := []string{
			"0s event initialize->backup",
			"0s flush",
			"3.609375s add [192.0.2.100/24]",
			"3.609375s advert prio=100",
			"3.609375s garp [192.0.2.100]",
			"3.609375s event backup->master",
			"3.609375s flush",
		}
		if diff := cmp.Diff(want, j.take()); diff != "" {
			t.Errorf("journal (-want +got):\n%s", diff)
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// Receive errors (ENOBUFS, a vanished interface) neither stop the Router nor make it spin:
// the reader backs off, 10 ms doubling, and carries on.
func TestRouterSurvivesReceiveErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.conn.errs = make(chan error)
		g.start()
		g.take()
		go func() {
			for range 3 {
				g.conn.errs <- errors.New("recvmsg: no buffer space available")
			}
		}()
		rtSleep(time.Second)
		g.expect("0s receive error", "10ms receive error", "30ms receive error")
		g.deliver(rtAdvert(t, rtPeer, 200, rtVIP))
		if s := g.r.Status(); s.MasterIP != rtPeer {
			t.Errorf("after receive errors the Router no longer hears adverts: %+v", s)
		}
		g.stop()
	})
}

// A peer whose adverts are refused (here: another authentication type, the classic split
// brain) is named in a warning at once, then once a minute per reason, not once per packet.
func TestRouterLogsDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncbuf.Buffer
		cfg := rtConfig()
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		}))
		g := newRig(t, cfg)
		g.start()
		wrongAuth := func() Inbound {
			a := Advertisement{Version: 2, Type: TypeAdvertisement, VRID: 51, Priority: 200, Interval: time.Second,
				AuthType: AuthSimple, AuthData: [8]byte{'s', 'e', 'c', 'r', 'e', 't'}, Addresses: []netip.Addr{rtVIP.Addr()}}
			b, err := a.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			return Inbound{Src: rtPeer, Dst: vrrpGroup, TTL: 255, Payload: b}
		}
		for range 90 {
			rtSleep(time.Second)
			g.deliver(wrongAuth())
		}
		var got []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "advert dropped") {
				got = append(got, l)
			}
		}
		want := []string{
			`level=WARN msg="advert dropped" vrid=51 interface=eth-test reason=auth_type src=192.0.2.2 total=1`,
			`level=WARN msg="advert dropped" vrid=51 interface=eth-test reason=auth_type src=192.0.2.2 total=61`,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("drop warnings (-want +got):\n%s", diff)
		}
		g.stop()
	})
}

// Status and SetPriority may be called from any goroutine while Run works (run with -race).
func TestRouterConcurrentUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.start()
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				for j := range 50 {
					g.r.SetPriority(uint8(100 + i + j))
					s := g.r.Status()
					s.Dropped["mine"]++ // a snapshot is the caller's to modify
					s.VirtualIPs = append(s.VirtualIPs, rtVIP2)
					time.Sleep(10 * time.Millisecond)
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		if s := g.r.Status(); s.Dropped["mine"] != 0 || len(s.VirtualIPs) > 1 {
			t.Errorf("a caller's changes to a snapshot leaked into the Router: %+v", s)
		}
		g.stop()
	})
}

func TestRouterUnicastPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := rtConfig()
		cfg.Unicast = true
		cfg.Peers = []netip.Addr{rtPeer}
		g := newRig(t, cfg)
		g.start()
		g.take()
		// A stranger advertising with a high priority does not keep this Backup down.
		for range 4 {
			rtSleep(time.Second)
			g.deliver(rtAdvert(t, netip.MustParseAddr("192.0.2.77"), 200, rtVIP))
		}
		rtSleep(rtDown100 - 4*time.Second)
		if s := g.r.Status(); s.State != StateMaster || s.Dropped["peer"] != 4 {
			t.Errorf("state %v, dropped %v; want master, 4 dropped as peer", s.State, s.Dropped)
		}
		g.stop()
	})
}

// rtAdvertV3 is a valid version 3 advert from src to dst at the given interval.
func rtAdvertV3(t testing.TB, src, dst netip.Addr, prio uint8, interval time.Duration) Inbound {
	t.Helper()
	a := Advertisement{Version: 3, Type: TypeAdvertisement, VRID: 51, Priority: prio, Interval: interval,
		Addresses: []netip.Addr{rtVIP.Addr()}}
	b, err := a.Marshal(PseudoHeader{Src: src, Dst: dst})
	if err != nil {
		t.Fatal(err)
	}
	return Inbound{Src: src, Dst: dst, TTL: 255, Payload: b}
}

// takeover is the journal of a takeover of rtVIP with a single gratuitous ARP, at the given
// time: the address, the event, the adverts sent, then the ARP.
func takeover(at string, adverts ...string) []string {
	out := []string{at + " add [192.0.2.100/24]"}
	for _, a := range adverts {
		out = append(out, at+" "+a)
	}
	return append(out, at+" garp [192.0.2.100]", at+" event backup->master")
}

// Version 3 through the Router: the RFC 9568 timers, a checksum per destination (the fake
// Conn parses each advert with the pseudo-header of its own destination, and journals an
// unparsable one), the Master's interval learned.
func TestRouterVersion3(t *testing.T) {
	t.Run("multicast", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := rtConfig()
			cfg.Version, cfg.AdvertInterval, cfg.GARPCount = 3, 100*time.Millisecond, 1
			g := newRig(t, cfg)
			g.start()
			g.expect("0s event initialize->backup")
			rtSleep(360937500*time.Nanosecond - 1) // Master_Down_Interval(100 ms, priority 100)
			g.expect()
			rtSleep(1)
			g.expect(takeover("360.9375ms", "advert prio=100")...)
			rtSleep(200 * time.Millisecond)
			g.expect("460.9375ms advert prio=100", "560.9375ms advert prio=100")

			// A Master of higher priority at 1 s: step down and wait Master_Down_Interval of
			// its interval, 3.609375 s, not 360.9375 ms.
			g.deliver(rtAdvertV3(t, rtPeer, vrrpGroup, 200, time.Second))
			g.expect("560.9375ms remove [192.0.2.100/24]", "560.9375ms event master->backup")
			if s := g.r.Status(); s.State != StateBackup || s.MasterAdverInterval != time.Second {
				t.Errorf("Status %+v; want backup, MasterAdverInterval 1s", s)
			}
			rtSleep(3609375*time.Microsecond - 1)
			g.expect()
			rtSleep(1)
			g.expect(takeover("4.1703125s", "advert prio=100")...)
			g.stop()
			g.take()
		})
	})
	t.Run("unicast", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			peer2 := netip.MustParseAddr("192.0.2.3")
			cfg := rtConfig()
			cfg.Version, cfg.AdvertInterval, cfg.GARPCount = 3, 10*time.Millisecond, 1
			cfg.Unicast, cfg.Peers = true, []netip.Addr{rtPeer, peer2}
			g := newRig(t, cfg)
			g.start()
			g.take()
			rtSleep(36093750 * time.Nanosecond) // Master_Down_Interval(10 ms, priority 100)
			g.expect(takeover("36.09375ms", "advert prio=100 v3 to 192.0.2.2", "advert prio=100 v3 to 192.0.2.3")...)
			rtSleep(10 * time.Millisecond)
			g.expect("46.09375ms advert prio=100 v3 to 192.0.2.2", "46.09375ms advert prio=100 v3 to 192.0.2.3")
			g.stop()
			g.take()
		})
	})
}

func TestRouterRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, rtConfig())
		g.start()
		if err := g.r.Run(context.Background()); err == nil {
			t.Error("second Run returned nil")
		}
		g.stop()
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no VIPs", func(c *Config) { c.VirtualIPs = nil }, "VirtualIPs"},
		{"IPv6 VIP", func(c *Config) { c.VirtualIPs = []netip.Prefix{netip.MustParsePrefix("2001:db8::1/64")} }, "virtual address"},
		{"VIPs of two families", func(c *Config) { c.VirtualIPs = []netip.Prefix{rtVIP, netip.MustParsePrefix("2001:db8::1/64")} }, "VirtualIPs[1]"},
		{"IPv6 peer", func(c *Config) { c.Unicast, c.Peers = true, []netip.Addr{netip.MustParseAddr("fe80::2")} }, "Peers[0]"},
		{"version 3 at 15 ms", func(c *Config) { c.Version, c.AdvertInterval = 3, 15*time.Millisecond }, "interval"},
		{"version 3 with auth", func(c *Config) { c.Version, c.AuthType = 3, AuthSimple }, "authentication"},
		{"version 4", func(c *Config) { c.Version = 4 }, "version"},
		{"duplicate VIP", func(c *Config) { c.VirtualIPs = []netip.Prefix{rtVIP, rtVIP} }, "listed twice"},
		{"unicast without peers", func(c *Config) { c.Unicast = true }, "Peers"},
		{"peers without unicast", func(c *Config) { c.Peers = []netip.Addr{rtPeer} }, "Peers"},
		{"negative GARPCount", func(c *Config) { c.GARPCount = -1 }, "GARPCount"},
		{"VRID 0", func(c *Config) { c.VRID = 0 }, "VRID"},
		{"priority 0", func(c *Config) { c.Priority = 0 }, "priority"},
		{"interval 1.5s", func(c *Config) { c.AdvertInterval = 1500 * time.Millisecond }, "interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := rtConfig()
			tc.mod(&cfg)
			j := &journal{}
			_, err := New(cfg, &fakeConn{j: j}, &fakeAddresser{j: j}, &fakeAnnouncer{j: j})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// BenchmarkRouterReceive measures the Router's cost per received advert (reader goroutine,
// hand-off, Machine, status snapshot), for a Backup following its Master and for invalid
// packets being dropped. It reports allocations: the receive path must not turn a flood of
// packets into a flood of garbage.
func BenchmarkRouterReceive(b *testing.B) {
	for _, tc := range []struct {
		name  string
		valid bool
	}{{"valid-advert", true}, {"bad-checksum", false}} {
		b.Run(tc.name, func(b *testing.B) {
			j := newJournal()
			conn := &fakeConn{j: j, in: make(chan Inbound, 64), closed: make(chan struct{})}
			r, err := New(rtConfig(), conn, &fakeAddresser{j: j}, &fakeAnnouncer{j: j})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			good := rtAdvert(b, rtPeer, 200, rtVIP)
			bad := rtAdvert(b, rtPeer, 200, rtVIP)
			bad.Payload[7] ^= 0xff
			in := good
			if !tc.valid {
				in = bad
			}
			b.ReportAllocs()
			for b.Loop() {
				conn.in <- in
			}
			// Packets are handled in order: once a final bad one is counted, all are done.
			want := uint64(1)
			if !tc.valid {
				want = uint64(b.N) + 1
			}
			conn.in <- bad
			for r.Status().Dropped["checksum"] != want {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

type preparingAddresser struct{ *fakeAddresser }

func (p preparingAddresser) Prepare(vips []netip.Prefix) { p.j.add("prepare %v", vips) }

// newLeadRig is a rig whose Router wakes lead before a takeover deadline, as Dial's does,
// with an Addresser that journals Prepare. While ready it sleeps 100 µs between looks at the
// clock (the production Router yields the CPU instead), so that fake time moves.
func newLeadRig(t *testing.T, lead time.Duration) *rig {
	g := newRig(t, rtConfig())
	g.r.addrs = preparingAddresser{g.addrs}
	g.r.takeoverLead = lead
	g.r.spinWait = func() { time.Sleep(100 * time.Microsecond) }
	return g
}

// A Router with a takeover lead wakes that long before Master_Down_Timer expires, has the
// Addresser prepare, and takes over at the deadline itself, to the nanosecond, as one without
// a lead does (TestRouterTakesOverAdvertisesAndResigns); a Master's adverts are unaffected.
func TestRouterReadyBeforeTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newLeadRig(t, 2*time.Millisecond)
		g.start()
		g.expect("0s event initialize->backup")
		rtSleep(rtDown100 - 2*time.Millisecond - time.Nanosecond)
		g.expect()
		rtSleep(time.Nanosecond)
		g.expect("3.607375s prepare [192.0.2.100/24]")
		rtSleep(2*time.Millisecond - time.Nanosecond)
		g.expect()
		rtSleep(time.Nanosecond)
		g.expect(
			"3.609375s add [192.0.2.100/24]",
			"3.609375s advert prio=100",
			"3.609375s garp [192.0.2.100]",
			"3.609375s event backup->master",
		)
		if ev := g.events[len(g.events)-1]; !ev.At.Equal(g.j.start.Add(rtDown100)) {
			t.Errorf("takeover dated %v, want the deadline %v", ev.At.Sub(g.j.start), rtDown100)
		}
		rtSleep(time.Second)
		g.take() // the rest of the gratuitous ARPs
		rtSleep(time.Second)
		g.expect("5.609375s advert prio=100")
		g.stop()
		g.take()
	})
}

// An advert that arrives while the Router is ready for a takeover is handled at once: the
// Backup follows its Master and takes over only Master_Down_Interval after that advert, again
// woken ahead of it. A priority-0 advert in the lead brings the takeover forward to Skew_Time.
func TestRouterReadyBeforeTakeoverHearsAdverts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newLeadRig(t, 2*time.Millisecond)
		g.start()
		g.take()
		rtSleep(rtDown100 - time.Millisecond) // 1 ms into the lead
		g.expect("3.607375s prepare [192.0.2.100/24]")
		g.deliver(rtAdvert(t, rtPeer, 200, rtVIP))
		rtSleep(time.Millisecond)
		g.expect()
		if s := g.r.Status(); s.State != StateBackup || s.MasterIP != rtPeer {
			t.Fatalf("after an advert in the lead: state %v, master %v; want backup following %v", s.State, s.MasterIP, rtPeer)
		}
		// Next deadline: 3.608375 s + 3.609375 s = 7.21775 s; ready 2 ms before it, now.
		rtSleep(rtDown100 - 2*time.Millisecond - time.Millisecond)
		g.expect("7.21575s prepare [192.0.2.100/24]")
		// The Master resigns: Skew_Time, 609.375 ms, to 7.825125 s.
		g.deliver(rtAdvert(t, rtPeer, 0, rtVIP))
		rtSleep(609375*time.Microsecond - 2*time.Millisecond)
		g.expect("7.823125s prepare [192.0.2.100/24]")
		rtSleep(2*time.Millisecond - time.Nanosecond)
		g.expect()
		rtSleep(time.Nanosecond)
		g.expect(
			"7.825125s add [192.0.2.100/24]",
			"7.825125s advert prio=100",
			"7.825125s garp [192.0.2.100]",
			"7.825125s event backup->master",
		)
		g.stop()
		g.take()
	})
}
