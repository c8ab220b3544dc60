package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linkMonitor is the production [linkWatcher]: it follows the interface of a Router made by
// Dial. It reads the link's state through the Router's netlink handle (so in Dial's network
// namespace), and is woken by the kernel's link notifications (RTM_NEWLINK/RTM_DELLINK) for
// the interface's name and by its address notifications (RTM_NEWADDR/RTM_DELADDR: the
// primary address removed). While both subscriptions work the Router polls it only every
// linkSafetyPoll; once either reports an error (a notification may have been lost, for
// example to a full socket buffer) or ends, it polls once per advertisement interval, as it
// does when the subscriptions could not be made. Polling every second costs two netlink
// dumps, their garbage and a wake-up of the process each second, which was most of an idle
// daemon's CPU (docs/benchmarks.md, resources).
//
// An interface deleted and created again under the same name (a driver reload, a veth or
// bridge rebuilt by the network configuration) has a new index: the sockets bound to the old
// one would send into nothing (ENODEV) forever. check rebinds them to the new index: the raw
// socket's send and receive interface and group membership, the gratuitous ARP socket and the
// Addresser's link; in virtual-MAC mode the macvlan, which went with its parent, is made again
// on the new parent first.
type linkMonitor struct {
	h     *netlink.Handle
	ns    netns.NsHandle // Dial's network namespace, where a new ARP socket must be made
	name  string
	index int
	// rule decides the Primary (see linkVerdict); rule.Current is the one followed now and
	// bound the one the sockets send from, which the Router takes over (primary). They
	// differ while a new Primary cannot be sent from yet.
	rule    primaryRule
	bound   netip.Addr
	family  int
	watched atomic.Pointer[netip.Addr] // rule.Current, for the address notifications' filter
	seeking atomic.Bool                // a picked Primary is missing: any candidate address may be it
	indexW  atomic.Int32               // index, for the link notifications' filter (a rename away)
	vrid    uint8
	unicast bool
	vmac    *vmacLink // virtual-MAC mode's macvlan; nil otherwise
	conn    boundConn
	arp     boundAnnouncer
	addrs   *netlinkAddresser
	log     *slog.Logger

	wake chan struct{}
	done chan struct{}
	// subscribed: both subscriptions were made (set before Dial returns); lost: one of them
	// has reported an error or ended since.
	subscribed bool
	lost       atomic.Bool
	lastCause  Cause // the last verdict, kept when a lookup fails for another reason
	lastWhy    string
}

var (
	_ linkWatcher     = (*linkMonitor)(nil)
	_ linkPoller      = (*linkMonitor)(nil)
	_ primaryFollower = (*linkMonitor)(nil)
)

// linkSafetyPoll is how often the Router looks at the interface while the kernel's
// notifications are known to arrive: a last resort, not the way a change is seen.
const linkSafetyPoll = 10 * time.Second

// newLinkMonitor subscribes to link notifications in the calling thread's network namespace
// (Dial's). Without them (an error is logged) the Router's polling alone follows the link.
//
// configured is the Primary as configured (invalid: Dial picked cfg.Primary, and it follows
// the interface's addresses; see linkVerdict).
func newLinkMonitor(h *netlink.Handle, link netlink.Link, cfg Config, configured netip.Addr, vmac *vmacLink, conn boundConn,
	arp boundAnnouncer, addrs *netlinkAddresser, log *slog.Logger) (*linkMonitor, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("vrrp: network namespace of Dial: %w", err)
	}
	l := &linkMonitor{
		ns: ns,
		h:  h, name: cfg.Interface, index: link.Attrs().Index,
		rule:  primaryRule{Configured: configured, Current: cfg.Primary, VirtualIPs: cfg.VirtualIPs},
		bound: cfg.Primary, family: netlink.FAMILY_V4,
		vrid: cfg.VRID, unicast: cfg.Unicast, vmac: vmac,
		conn: conn, arp: arp, addrs: addrs, log: log,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if cfg.Unicast {
		l.rule.Peers = cfg.Peers
	}
	if cfg.Primary.Is6() {
		l.family = netlink.FAMILY_V6
	}
	watched := cfg.Primary // a copy: decide changes l.rule.Current
	l.watched.Store(&watched)
	l.indexW.Store(int32(l.index))
	onError := func(what string) func(error) {
		return func(err error) {
			select {
			case <-l.done: // closing the subscription makes its last receive fail
			default:
				log.Warn(what+" notifications failed; following the interface by polling", "err", err)
				l.lose()
			}
		}
	}
	updates := make(chan netlink.LinkUpdate, 16)
	err = netlink.LinkSubscribeWithOptions(updates, l.done, netlink.LinkSubscribeOptions{ErrorCallback: onError("link")})
	if err != nil {
		log.Warn("no link notifications; following the interface by polling only", "err", err)
		return l, nil
	}
	addrUpdates := make(chan netlink.AddrUpdate, 16)
	err = netlink.AddrSubscribeWithOptions(addrUpdates, l.done, netlink.AddrSubscribeOptions{ErrorCallback: onError("address")})
	if err != nil {
		log.Warn("no address notifications; following the interface by polling", "err", err)
	}
	l.subscribed = err == nil
	go func() {
		for u := range updates {
			// By name, and by index: a link renamed away is announced with its new name.
			if a := u.Attrs(); a != nil && (a.Name == l.name || a.Index == int(l.indexW.Load())) {
				l.poke()
			}
		}
		l.lose()
	}()
	if err == nil {
		filter := l.rule // a copy: the Run goroutine changes l.rule.Current (not its family)
		go func() {
			// Only the Primary's: the other addresses of the namespace include every group's
			// virtual IPs, installed at each takeover, and 64 groups would wake each other
			// 64 times over. While a picked Primary is missing, any address that could
			// replace it (a recreated interface's new link-local address).
			for u := range addrUpdates {
				a, ok := netip.AddrFromSlice(u.LinkAddress.IP)
				if !ok {
					continue
				}
				a = a.Unmap()
				if a == *l.watched.Load() || (l.seeking.Load() && filter.candidate(a)) {
					l.poke()
				}
			}
			l.lose()
		}()
	}
	return l, nil
}

// poke wakes the Router; it never blocks.
func (l *linkMonitor) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// lose records that a notification may have been missed, so the Router polls every advert
// interval from now on, and wakes it to look at the interface now.
func (l *linkMonitor) lose() {
	select {
	case <-l.done:
		return
	default:
	}
	l.lost.Store(true)
	l.poke()
}

// pollInterval is linkSafetyPoll while the notifications work, else advert; see [linkPoller].
func (l *linkMonitor) pollInterval(advert time.Duration) time.Duration {
	if l.subscribed && !l.lost.Load() {
		return max(advert, linkSafetyPoll)
	}
	return advert
}

func (l *linkMonitor) changed() <-chan struct{} { return l.wake }

// check looks at the interface now; see [linkWatcher].
func (l *linkMonitor) check() (Cause, string) {
	c, why := l.verdict()
	l.lastCause, l.lastWhy = c, why
	return c, why
}

func (l *linkMonitor) verdict() (Cause, string) {
	link, err := l.h.LinkByName(l.name)
	if err != nil {
		if nf := (netlink.LinkNotFoundError{}); errors.As(err, &nf) {
			st := linkState{}
			if old, err := l.h.LinkByIndex(l.index); err == nil && old.Attrs().Name != l.name {
				st.RenamedTo = old.Attrs().Name
			}
			return l.decide(st)
		}
		l.log.Warn("looking up the interface failed; keeping its last state", "err", err)
		return l.lastCause, l.lastWhy
	}
	a := link.Attrs()
	st := linkState{Exists: true, Up: a.Flags&net.FlagUp != 0, Carrier: a.RawFlags&unix.IFF_LOWER_UP != 0,
		Dormant: a.OperState == netlink.OperDormant, Testing: a.OperState == netlink.OperTesting}
	if st.Up && st.Carrier {
		addrs, err := l.h.AddrList(link, l.family)
		if err != nil {
			l.log.Warn("listing the interface's addresses failed; keeping its last state", "err", err)
			return l.lastCause, l.lastWhy
		}
		for _, ad := range addrs {
			if p, ok := ipNetPrefix(ad.IPNet); ok {
				st.Addrs = append(st.Addrs, linkAddr{Addr: p.Addr(),
					Tentative: ad.Flags&unix.IFA_F_TENTATIVE != 0, DADFailed: ad.Flags&unix.IFA_F_DADFAILED != 0})
			}
		}
	}
	if c, why := l.decide(st); c != CauseUnknown {
		return c, why
	}
	if a.Index != l.index {
		// Rebound only once usable: a packet socket bound to a down interface fails its
		// first send with ENETDOWN, which would be the first gratuitous ARP of a takeover.
		if err := l.rebind(link); err != nil {
			return CauseInterfaceGone, fmt.Sprintf("interface %s recreated; binding to it failed: %v", l.name, err)
		}
		l.log.Info("interface recreated; sockets bound to the new one", "index", a.Index, "was", l.index)
		l.index = a.Index
		l.indexW.Store(int32(a.Index))
	}
	if p := l.rule.Current; p != l.bound {
		l.conn.setSource(p)
		l.arp.setSource(p)
		l.log.Info("primary address changed; adverts leave from the new one", "primary", p, "was", l.bound)
		l.bound = p
	}
	return CauseUnknown, ""
}

// decide applies linkVerdict to st and follows the Primary it picks.
func (l *linkMonitor) decide(st linkState) (Cause, string) {
	p, c, why := linkVerdict(l.name, l.rule, st)
	if p != l.rule.Current {
		l.log.Info("the primary address is gone; following the interface's new one", "primary", p, "was", l.rule.Current)
		l.rule.Current = p
		l.watched.Store(&p)
	}
	l.seeking.Store(!l.rule.Configured.IsValid() && c != CauseUnknown)
	return c, why
}

// primary is the address the sockets send from now; see [primaryFollower].
func (l *linkMonitor) primary() netip.Addr { return l.bound }

// rebind points the Router's sockets and the Addresser at the recreated link, making the
// virtual-MAC macvlan again on it first (its sysctls are written from Dial's namespace too).
func (l *linkMonitor) rebind(link netlink.Link) error {
	pifi := linkInterface(link)
	send, arpIfi, addrLink := pifi, pifi, link
	if l.vmac != nil {
		// The old macvlan went with a deleted parent, but stays on one renamed away: it is
		// ours, and its name is needed on the new parent; the renamed parent gets its ARP
		// settings back.
		if old, err := l.h.LinkByIndex(l.index); err == nil && old.Attrs().Name != l.name {
			to := old.Attrs().Name
			l.inNamespace(func() error { l.vmac.parentRenamed(l.name, to); return nil })
		}
		if err := l.vmac.Close(); err != nil {
			l.log.Warn("releasing the old virtual-MAC link", "err", err)
		}
		var v *vmacLink
		err := l.inNamespace(func() (err error) {
			v, err = setupVMAC(l.h, link, l.vrid, l.vmac.ipv6, l.vmac.journal, l.log)
			return err
		})
		if err != nil {
			return err
		}
		l.vmac.replace(v)
		arpIfi, addrLink = l.vmac.ifi, l.vmac.link
		if !l.unicast {
			send = l.vmac.ifi // as Dial does: unicast adverts leave from the parent
		}
	}
	if err := l.conn.rebind(pifi, send); err != nil {
		return err
	}
	if err := l.inNamespace(func() error { return l.arp.rebind(arpIfi) }); err != nil {
		return err
	}
	l.addrs.link = addrLink
	return nil
}

// inNamespace runs fn on a new OS thread in Dial's network namespace, where a socket fn makes
// belongs; the Run goroutine's thread may be in any other. The thread is never reused: its
// goroutine exits still locked to it, so the runtime discards it.
func (l *linkMonitor) inNamespace(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(l.ns); err != nil {
			done <- fmt.Errorf("vrrp: entering Dial's network namespace: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// Close ends the link notifications.
func (l *linkMonitor) Close() error {
	close(l.done)
	return l.ns.Close()
}
