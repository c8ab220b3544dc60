package vrrp

import (
	"net/netip"

	"github.com/vishvananda/netlink"
)

// subscribeAddrs wakes the monitor when the Primary address is added to or removed from any
// interface of the calling thread's network namespace (Dial's): the other condition of
// verdict that link notifications do not carry. Other addresses (the virtual IPs of every
// group, installed at each takeover) do not wake it. Without the subscription (an error is
// logged) the poll alone sees a lost Primary.
func (l *linkMonitor) subscribeAddrs() {
	updates := make(chan netlink.AddrUpdate, 16)
	err := netlink.AddrSubscribeWithOptions(updates, l.done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-l.done:
			default:
				l.log.Warn("address notifications failed; following the primary address by polling", "err", err)
			}
		},
	})
	if err != nil {
		l.log.Warn("no address notifications; following the primary address by polling only", "err", err)
		return
	}
	go func() {
		for u := range updates {
			if a, ok := netip.AddrFromSlice(u.LinkAddress.IP); !ok || a.Unmap() != l.primary {
				continue
			}
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	}()
}
