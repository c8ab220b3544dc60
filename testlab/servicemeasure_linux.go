package testlab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

// The measuring steps of a PBX takeover as the phones see it, shared by
// TestKamailioUnderRedundantd and `redundantlab bench service` (docs/pbx.md).

// ServiceProbe is what a takeover is measured with: the sampler of the nodes, the phones'
// node, the virtual IP's SIP address, and the caller and the callee.
type ServiceProbe struct {
	Watch  *KamailioWatch
	From   *Node          // the phones' node: OPTIONS are sent from it
	SIP    netip.AddrPort // the virtual IP and SIP port
	Caller *Phone
	Callee *Phone
	// Timeline, when set, gives the last advert of the node that lost the Master role (the
	// kernel's receive stamp on the bridge), so times can be read against the
	// Master_Down_Interval, which counts from it.
	Timeline *Timeline
}

// ServiceTakeover is one takeover, every time counted from At (the loss, or the command).
// VIP and Kamailio are negative when the sampler did not see them on the new node.
type ServiceTakeover struct {
	At       time.Time
	Acted    time.Duration // the action (loss, swap command) returned
	VIP      time.Duration // the virtual IP first seen on the new node
	Kamailio time.Duration // a Kamailio process first seen on the new node
	Options  time.Duration // the first OPTIONS to the virtual IP answered
	Call     time.Duration // the caller's INVITE to the callee answered through the VIP
	// LastAdvert is when the bridge last saw an advert (priority above 0) from a node other
	// than the new Master, up to the end of the measurement: for a power loss, the lost
	// Master's last one, before At. Zero without a Timeline or such an advert.
	LastAdvert time.Time
	// Registers is the REGISTER transactions of the caller and the callee after the
	// takeover, counted since each phone started (1 each: no phone re-registered).
	Registers [2]int
}

// Measure marks the sampler, runs act (the power loss or the swap), then waits until an
// OPTIONS to the virtual IP is answered and the caller's call to the callee is answered, and
// returns the times, with to the node expected to take over. The call follows the first
// answered OPTIONS, so it measures when the PBX really serves the phones, not only listens.
func (p ServiceProbe) Measure(ctx context.Context, to *Node, act func(context.Context) error) (ServiceTakeover, error) {
	t := ServiceTakeover{At: time.Now()}
	p.Watch.Mark(t.At)
	if err := act(ctx); err != nil {
		return t, err
	}
	t.Acted = time.Since(t.At)
	optAt, err := SIPPing(ctx, p.From, p.SIP)
	if err != nil {
		return t, err
	}
	t.Options = optAt.Sub(t.At)
	callAt, err := p.Caller.Call(ctx, p.Callee.User)
	if err != nil {
		return t, fmt.Errorf("testlab: %s -> %s after the takeover: %w", p.Caller.User, p.Callee.User, err)
	}
	t.Call = callAt.Sub(t.At)
	t.VIP, t.Kamailio = -1, -1
	if d, ok := p.Watch.Since("vip@" + to.Name); ok {
		t.VIP = d
	}
	if d, ok := p.Watch.Since("kamailio@" + to.Name); ok {
		t.Kamailio = d
	}
	t.Registers = [2]int{p.Caller.Registers(), p.Callee.Registers()}
	if p.Timeline != nil {
		if a, ok := p.Timeline.LastAdvert(time.Now(), func(a Advert) bool { return a.Src != to.Addr && a.Priority > 0 }); ok {
			t.LastAdvert = a.At
		}
	}
	return t, nil
}

// SinceAdvert is d (a time counted from At) counted from the last advert instead: what the
// Master_Down_Interval bounds for the VIP. False without a last advert or when d is unknown.
func (t ServiceTakeover) SinceAdvert(d time.Duration) (time.Duration, bool) {
	if t.LastAdvert.IsZero() || d < 0 {
		return 0, false
	}
	return t.At.Add(d).Sub(t.LastAdvert), true
}

// String is the takeover's times in one line.
func (t ServiceTakeover) String() string {
	f := func(d time.Duration) string {
		if d < 0 {
			return "-"
		}
		return "+" + d.Round(time.Millisecond).String()
	}
	adv := ""
	if !t.LastAdvert.IsZero() {
		adv = fmt.Sprintf("last advert %s, ", t.LastAdvert.Sub(t.At).Round(time.Millisecond))
		if vip, ok := t.SinceAdvert(t.VIP); ok {
			adv = fmt.Sprintf("last advert %s (VIP %s after it), ", t.LastAdvert.Sub(t.At).Round(time.Millisecond), vip.Round(time.Millisecond))
		}
	}
	return fmt.Sprintf("%sacted %s, VIP %s, kamailio %s, OPTIONS to the VIP answered %s, call answered %s, REGISTERs %d/%d",
		adv, f(t.Acted), f(t.VIP), f(t.Kamailio), f(t.Options), f(t.Call), t.Registers[0], t.Registers[1])
}

// KillKamailio sends SIGKILL to every Kamailio in the node's namespace (a daemonized Kamailio
// is in no process group the lab knows).
func (n *Node) KillKamailio() {
	pids, _ := n.KamailioPids()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// PowerLoss is the node losing power: its link is cut, then its Kamailio and the given
// processes (its VRRP daemon, and whatever else it runs) are killed with SIGKILL, so nothing
// more is sent on the wire and no stop command runs.
func (n *Node) PowerLoss(ctx context.Context, procs ...*Process) error {
	if err := n.CutLink(); err != nil {
		return err
	}
	n.KillKamailio()
	for _, p := range procs {
		if p == nil {
			continue
		}
		if exited, _ := p.Exited(); exited {
			continue
		}
		if err := p.Kill(ctx); err != nil {
			return err
		}
	}
	return nil
}

// WaitUsers polls a usrloc database (a file has no event to wait on) until it lists want,
// and returns when that was seen.
func WaitUsers(ctx context.Context, db string, want []string) (time.Time, error) {
	var last []string
	var lastErr error
	for {
		users, err := RegisteredUsers(ctx, db)
		if err == nil && slices.Equal(users, want) {
			return time.Now(), nil
		}
		last, lastErr = users, err
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("testlab: %s never listed %v: last %v (%v): %w", db, want, last, lastErr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
