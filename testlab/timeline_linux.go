package testlab

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Timeline records every VRRP advert on the bridge and every appearance and disappearance of
// one virtual IP in the nodes, with the time this process saw each, so tests and benchmarks
// can ask what happened when instead of sleeping.
type Timeline struct {
	VIP netip.Addr

	mu      sync.Mutex
	adverts []Advert
	arps    []ARP
	nas     []NA
	vips    []VIPEvent
	holding map[*Node]bool
	notify  chan struct{}
}

// Record starts a Timeline for vip; it records until ctx ends or the lab is closed.
func (l *Lab) Record(ctx context.Context, vip netip.Addr) (*Timeline, error) {
	adverts, err := l.SniffVRRP(ctx)
	if err != nil {
		return nil, err
	}
	arps, err := l.SniffARP(ctx)
	if err != nil {
		return nil, err
	}
	nas, err := l.SniffNA(ctx)
	if err != nil {
		return nil, err
	}
	events, err := l.WatchVIP(ctx, vip)
	if err != nil {
		return nil, err
	}
	tl := &Timeline{VIP: vip, holding: map[*Node]bool{}, notify: make(chan struct{})}
	go func() {
		for a := range adverts {
			tl.mu.Lock()
			tl.adverts = append(tl.adverts, a)
			tl.wake()
			tl.mu.Unlock()
		}
	}()
	go func() {
		for a := range arps {
			tl.mu.Lock()
			tl.arps = append(tl.arps, a)
			tl.wake()
			tl.mu.Unlock()
		}
	}()
	go func() {
		for na := range nas {
			tl.mu.Lock()
			tl.nas = append(tl.nas, na)
			tl.wake()
			tl.mu.Unlock()
		}
	}()
	go func() {
		for e := range events {
			tl.mu.Lock()
			tl.vips = append(tl.vips, e)
			tl.holding[e.Node] = e.Present
			tl.wake()
			tl.mu.Unlock()
		}
	}()
	return tl, nil
}

// wake must be called with mu held.
func (tl *Timeline) wake() {
	close(tl.notify)
	tl.notify = make(chan struct{})
}

// Adverts returns a copy of the adverts recorded so far, oldest first.
func (tl *Timeline) Adverts() []Advert {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]Advert(nil), tl.adverts...)
}

// GARPs returns the gratuitous ARPs for the timeline's VIP recorded in (from, to], oldest
// first.
func (tl *Timeline) GARPs(from, to time.Time) []ARP {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []ARP
	for _, a := range tl.arps {
		if a.At.After(from) && !a.At.After(to) && a.Gratuitous() && a.SenderIP == tl.VIP {
			out = append(out, a)
		}
	}
	return out
}

// WaitGARP returns the first gratuitous ARP for the VIP recorded after after.
func (tl *Timeline) WaitGARP(ctx context.Context, after time.Time) (ARP, error) {
	var found ARP
	err := tl.wait(ctx, "a gratuitous ARP for "+tl.VIP.String(), func() bool {
		for _, a := range tl.arps {
			if a.At.After(after) && a.Gratuitous() && a.SenderIP == tl.VIP {
				found = a
				return true
			}
		}
		return false
	})
	return found, err
}

// NAs returns the unsolicited Neighbor Advertisements for the timeline's VIP (sent to ff02::1,
// Solicited clear) recorded in (from, to], oldest first.
func (tl *Timeline) NAs(from, to time.Time) []NA {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []NA
	for _, na := range tl.nas {
		if na.At.After(from) && !na.At.After(to) && tl.unsolicitedNA(na) {
			out = append(out, na)
		}
	}
	return out
}

func (tl *Timeline) unsolicitedNA(na NA) bool {
	return na.Target == tl.VIP && !na.Solicited && na.Dst == netip.MustParseAddr("ff02::1")
}

// WaitNA returns the first unsolicited Neighbor Advertisement for the VIP recorded after after.
func (tl *Timeline) WaitNA(ctx context.Context, after time.Time) (NA, error) {
	var found NA
	err := tl.wait(ctx, "a Neighbor Advertisement for "+tl.VIP.String(), func() bool {
		for _, na := range tl.nas {
			if na.At.After(after) && tl.unsolicitedNA(na) {
				found = na
				return true
			}
		}
		return false
	})
	return found, err
}

// VIPEvents returns a copy of the VIP events recorded so far, oldest first.
func (tl *Timeline) VIPEvents() []VIPEvent {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]VIPEvent(nil), tl.vips...)
}

// Holders lists the nodes that hold the VIP according to the events recorded so far.
func (tl *Timeline) Holders() []*Node {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []*Node
	for n, ok := range tl.holding {
		if ok {
			out = append(out, n)
		}
	}
	return out
}

// Holds reports whether n holds the VIP according to the events recorded so far.
func (tl *Timeline) Holds(n *Node) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.holding[n]
}

// wait calls check (with mu held) after every recorded event until it returns true or ctx ends.
func (tl *Timeline) wait(ctx context.Context, what string, check func() bool) error {
	for {
		tl.mu.Lock()
		if check() {
			tl.mu.Unlock()
			return nil
		}
		notify := tl.notify
		tl.mu.Unlock()
		select {
		case <-notify:
		case <-ctx.Done():
			return fmt.Errorf("testlab: waiting for %s: %w", what, ctx.Err())
		}
	}
}

// WaitAdvert returns the first advert recorded after after that matches.
func (tl *Timeline) WaitAdvert(ctx context.Context, after time.Time, what string, match func(Advert) bool) (Advert, error) {
	var found Advert
	err := tl.wait(ctx, what, func() bool {
		for _, a := range tl.adverts {
			if a.At.After(after) && match(a) {
				found = a
				return true
			}
		}
		return false
	})
	return found, err
}

// WaitVIP returns the first event after after in which n gains (present) or loses the VIP.
func (tl *Timeline) WaitVIP(ctx context.Context, n *Node, present bool, after time.Time) (VIPEvent, error) {
	var found VIPEvent
	what := fmt.Sprintf("%s on %s (present=%t)", tl.VIP, n.Name, present)
	err := tl.wait(ctx, what, func() bool {
		for _, e := range tl.vips {
			if e.At.After(after) && e.Node == n && e.Present == present {
				found = e
				return true
			}
		}
		return false
	})
	return found, err
}

// LastAdvert returns the last advert recorded at or before before that matches.
func (tl *Timeline) LastAdvert(before time.Time, match func(Advert) bool) (Advert, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for i := len(tl.adverts) - 1; i >= 0; i-- {
		a := tl.adverts[i]
		if !a.At.After(before) && match(a) {
			return a, true
		}
	}
	return Advert{}, false
}

// AdvertsBetween returns the recorded adverts with from < At <= to that match.
func (tl *Timeline) AdvertsBetween(from, to time.Time, match func(Advert) bool) []Advert {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []Advert
	for _, a := range tl.adverts {
		if a.At.After(from) && !a.At.After(to) && (match == nil || match(a)) {
			out = append(out, a)
		}
	}
	return out
}

// From matches adverts sent by the node's fixed address for vrid: its IPv4 address, or for
// IPv6 adverts its link-local address.
func From(n *Node, vrid uint8) func(Advert) bool {
	return func(a Advert) bool { return (a.Src == n.Addr || a.Src == n.LinkLocal) && a.VRID == vrid }
}

// SkewTime is RFC 3768 section 6.1's Skew_Time for priority p: (256 - p) / 256 seconds.
func SkewTime(p uint8) time.Duration { return time.Duration(256-int(p)) * time.Second / 256 }

// MasterDownInterval is RFC 3768 section 6.1's Master_Down_Interval:
// 3 * Advertisement_Interval + Skew_Time.
func MasterDownInterval(interval time.Duration, p uint8) time.Duration {
	return 3*interval + SkewTime(p)
}

// SkewTimeV3 is RFC 9568 section 6.1's Skew_Time for priority p following a Master that
// advertises every interval: ((256 - p) * interval) / 256.
func SkewTimeV3(p uint8, interval time.Duration) time.Duration {
	return time.Duration(256-int(p)) * interval / 256
}

// MasterDownIntervalV3 is RFC 9568 section 6.1's Master_Down_Interval:
// 3 * Master_Adver_Interval + Skew_Time.
func MasterDownIntervalV3(interval time.Duration, p uint8) time.Duration {
	return 3*interval + SkewTimeV3(p, interval)
}

// Failover is one measured takeover.
type Failover struct {
	Impl    Impl
	Planned bool      // SIGTERM (priority-0 advert) rather than SIGKILL
	From    *Router   // the Master that was stopped
	To      *Router   // the Backup that took over
	Signal  time.Time // when the signal was sent
	// Ref is the reference advert: for an unplanned failover the last advert with a non-zero
	// priority heard from the old Master, for a planned one its priority-0 advert.
	Ref Advert
	VIP VIPEvent // the VIP appearing on the new Master
	// FirstAdvert is the new Master's first advert after Ref (zero At if none was seen yet).
	FirstAdvert Advert
	// FirstGARP is the first gratuitous ARP for the VIP after Ref (zero At if none within 2 s),
	// for an IPv4 VIP; FirstNA the first unsolicited Neighbor Advertisement for an IPv6 one.
	FirstGARP ARP
	FirstNA   NA
}

// Elapsed is the failover time: from Ref to the VIP on the new Master.
func (f Failover) Elapsed() time.Duration { return f.VIP.At.Sub(f.Ref.At) }

// Theory is what RFC 3768 (RFC 9568 for version 3) predicts for Elapsed: Master_Down_Interval
// of the new Master for an unplanned failover, its Skew_Time for a planned one. A version 3
// Backup computes both from the old Master's advert interval, which it learned.
func (f Failover) Theory() time.Duration {
	c := f.To.Node.withDefaults(f.To.Config)
	if c.Version == 3 {
		mi := f.From.Node.withDefaults(f.From.Config).AdvertInterval
		if f.Planned {
			return SkewTimeV3(c.Priority, mi)
		}
		return MasterDownIntervalV3(mi, c.Priority)
	}
	if f.Planned {
		return SkewTime(c.Priority)
	}
	return MasterDownInterval(c.AdvertInterval, c.Priority)
}

// Target is Theory plus the 20 ms the project allows for scheduling and address installation.
func (f Failover) Target() time.Duration { return f.Theory() + 20*time.Millisecond }

// MeasureFailover stops master (SIGTERM when planned, else SIGKILL of its process group),
// waits until backup holds the VIP and returns the measured takeover. master must be the
// current Master and hold the VIP; the timeline must be recording.
func MeasureFailover(ctx context.Context, tl *Timeline, master, backup *Router, planned bool) (Failover, error) {
	f := Failover{Impl: backup.Impl, Planned: planned, From: master, To: backup}
	vrid := master.Node.withDefaults(master.Config).VRID
	if !tl.Holds(master.Node) {
		return f, fmt.Errorf("testlab: %s does not hold %s before the failover", master, tl.VIP)
	}
	sig := syscall.SIGKILL
	if planned {
		sig = syscall.SIGTERM
	}
	f.Signal = time.Now()
	if err := master.Proc().Signal(sig); err != nil {
		return f, err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ev, err := tl.WaitVIP(wctx, backup.Node, true, f.Signal)
	if err != nil {
		return f, fmt.Errorf("testlab: %s did not take over after %v to %s: %w", backup, sig, master, err)
	}
	f.VIP = ev
	fromMaster := From(master.Node, vrid)
	if planned {
		ref, err := tl.WaitAdvert(wctx, f.Signal, "priority-0 advert from "+master.String(), func(a Advert) bool {
			return fromMaster(a) && a.Priority == 0
		})
		if err != nil || ref.At.After(ev.At) {
			return f, fmt.Errorf("testlab: no priority-0 advert from %s before %s took over", master, backup)
		}
		f.Ref = ref
	} else {
		ref, ok := tl.LastAdvert(ev.At, func(a Advert) bool { return fromMaster(a) && a.Priority > 0 })
		if !ok {
			return f, fmt.Errorf("testlab: no advert from %s heard before the takeover", master)
		}
		f.Ref = ref
	}
	if _, err := master.Proc().Wait(wctx); err != nil {
		return f, err
	}
	f.FirstAdvert, _ = tl.WaitAdvert(wctx, f.Ref.At, "first advert of "+backup.String(), From(backup.Node, vrid))
	gctx, gcancel := context.WithTimeout(wctx, 2*time.Second)
	defer gcancel()
	if tl.VIP.Is6() {
		f.FirstNA, _ = tl.WaitNA(gctx, f.Ref.At)
	} else {
		f.FirstGARP, _ = tl.WaitGARP(gctx, f.Ref.At)
	}
	return f, nil
}
