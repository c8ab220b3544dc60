package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linkMonitor is the production [linkWatcher]: it follows the interface of a Router made by
// Dial. It reads the link's state through the Router's netlink handle (so in Dial's network
// namespace), and is woken by the kernel's link notifications (RTM_NEWLINK/RTM_DELLINK) for
// the interface's name, and by address notifications for the Primary (subscribeAddrs); the
// Router also polls it every linkPollInterval, which covers a lost notification.
//
// An interface deleted and created again under the same name (a driver reload, a veth or
// bridge rebuilt by the network configuration) has a new index: the sockets bound to the old
// one would send into nothing (ENODEV) forever. check rebinds them to the new index: the raw
// socket's send and receive interface and group membership, the gratuitous ARP socket and the
// Addresser's link; in virtual-MAC mode the macvlan, which went with its parent, is made again
// on the new parent first.
type linkMonitor struct {
	h       *netlink.Handle
	ns      netns.NsHandle // Dial's network namespace, where a new ARP socket must be made
	name    string
	index   int
	primary netip.Addr
	vrid    uint8
	unicast bool
	vmac    *vmacLink // virtual-MAC mode's macvlan; nil otherwise
	conn    *rawConn
	arp     *arpAnnouncer
	addrs   *netlinkAddresser
	log     *slog.Logger

	wake      chan struct{}
	done      chan struct{}
	lastCause Cause // the last verdict, kept when a lookup fails for another reason
	lastWhy   string
}

var _ linkWatcher = (*linkMonitor)(nil)

// newLinkMonitor subscribes to link notifications in the calling thread's network namespace
// (Dial's). Without them (an error is logged) the Router's polling alone follows the link.
func newLinkMonitor(h *netlink.Handle, link netlink.Link, cfg Config, vmac *vmacLink, conn *rawConn,
	arp *arpAnnouncer, addrs *netlinkAddresser, log *slog.Logger) (*linkMonitor, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("vrrp: network namespace of Dial: %w", err)
	}
	l := &linkMonitor{
		ns: ns,
		h:  h, name: cfg.Interface, index: link.Attrs().Index, primary: cfg.Primary,
		vrid: cfg.VRID, unicast: cfg.Unicast, vmac: vmac,
		conn: conn, arp: arp, addrs: addrs, log: log,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	l.subscribeAddrs()
	updates := make(chan netlink.LinkUpdate, 16)
	err = netlink.LinkSubscribeWithOptions(updates, l.done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-l.done: // closing the subscription makes its last receive fail
			default:
				log.Warn("link notifications failed; following the interface by polling", "err", err)
			}
		},
	})
	if err != nil {
		log.Warn("no link notifications; following the interface by polling only", "err", err)
		return l, nil
	}
	go func() {
		for u := range updates {
			if u.Attrs() == nil || u.Attrs().Name != l.name {
				continue
			}
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	}()
	return l, nil
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
			return CauseInterfaceGone, fmt.Sprintf("interface %s gone", l.name)
		}
		l.log.Warn("looking up the interface failed; keeping its last state", "err", err)
		return l.lastCause, l.lastWhy
	}
	a := link.Attrs()
	switch {
	case a.Flags&net.FlagUp == 0:
		return CauseInterfaceDown, fmt.Sprintf("interface %s down", l.name)
	case a.RawFlags&unix.IFF_LOWER_UP == 0:
		return CauseInterfaceDown, fmt.Sprintf("interface %s has no carrier", l.name)
	}
	addrs, err := l.h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		l.log.Warn("listing the interface's addresses failed; keeping its last state", "err", err)
		return l.lastCause, l.lastWhy
	}
	if !slices.ContainsFunc(addrs, func(ad netlink.Addr) bool {
		p, ok := ipNetPrefix(ad.IPNet)
		return ok && p.Addr() == l.primary
	}) {
		return CauseInterfaceDown, fmt.Sprintf("interface %s lacks the primary address %s", l.name, l.primary)
	}
	if a.Index != l.index {
		// Rebound only once usable: a packet socket bound to a down interface fails its
		// first send with ENETDOWN, which would be the first gratuitous ARP of a takeover.
		if err := l.rebind(link); err != nil {
			return CauseInterfaceGone, fmt.Sprintf("interface %s recreated; binding to it failed: %v", l.name, err)
		}
		l.log.Info("interface recreated; sockets bound to the new one", "index", a.Index, "was", l.index)
		l.index = a.Index
	}
	return CauseUnknown, ""
}

// rebind points the Router's sockets and the Addresser at the recreated link, making the
// virtual-MAC macvlan again on it first (its sysctls are written from Dial's namespace too).
func (l *linkMonitor) rebind(link netlink.Link) error {
	pifi := linkInterface(link)
	send, arpIfi, addrLink := pifi, pifi, link
	if l.vmac != nil {
		var v *vmacLink
		err := l.inNamespace(func() (err error) {
			v, err = setupVMAC(l.h, link, l.vrid, l.log)
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
	var arp *arpAnnouncer
	err := l.inNamespace(func() (err error) {
		arp, err = newARPAnnouncer(arpIfi)
		return err
	})
	if err != nil {
		return err
	}
	l.arp.replace(arp)
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
