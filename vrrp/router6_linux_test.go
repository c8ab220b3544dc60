package vrrp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// labConfig6 is an IPv6 group of Routers from Dial: VRRPv3 at 100 ms, fe80::1 first.
func labConfig6(ifname string, prio uint8, dir string) Config {
	return Config{
		Interface:      ifname,
		Version:        3,
		VRID:           51,
		Priority:       prio,
		AdvertInterval: 100 * time.Millisecond,
		Preempt:        true,
		VirtualIPs:     []netip.Prefix{labLLVIP, labVIP6},
		GARPCount:      2,
		GARPInterval:   50 * time.Millisecond,
		StateDir:       dir,
	}
}

// frames6 records the IPv6 frames a packet socket sees: adverts and NAs.
type frames6 struct {
	mu     sync.Mutex
	frames [][]byte
}

func (f *frames6) run(c *packet.Conn) {
	b := make([]byte, 2048)
	for {
		n, _, err := c.ReadFrom(b)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.frames = append(f.frames, slices.Clone(b[:n]))
		f.mu.Unlock()
	}
}

// match returns the frames keep accepts.
func (f *frames6) match(keep func([]byte) bool) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]byte
	for _, fr := range f.frames {
		if keep(fr) {
			out = append(out, fr)
		}
	}
	return out
}

// isVRRP6 and isNA6 recognise the frames of an IPv6 advert and of a Neighbor Advertisement
// for target.
func isVRRP6(f []byte) bool {
	return len(f) >= 54+8 && binary.BigEndian.Uint16(f[12:14]) == etherTypeIPv6 && f[20] == ipProtoVRRP
}

func isNA6(target netip.Addr) func([]byte) bool {
	return func(f []byte) bool {
		return len(f) >= naFrameLen && binary.BigEndian.Uint16(f[12:14]) == etherTypeIPv6 && f[20] == ipProtoICMPv6 &&
			f[54] == icmpv6NeighborAdvert && net.IP(f[62:78]).Equal(target.AsSlice())
	}
}

// Two Routers of an IPv6 group, the Master in virtual-MAC mode: it holds the virtual addresses
// on the macvlan vrrp6.51 with 00-00-5E-00-02-33, not tentative, and nothing else; its
// adverts (from its own link-local address) and NAs leave from the virtual MAC; the Backup names it by its link-local
// address. When it stops (priority 0), the Backup takes the addresses, not tentative either,
// and the macvlan is gone.
func TestRoutersIPv6VirtualMAC(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	needMacvlan(t, a, "vrt0")
	llA, llB := a.linkLocal6(t, "vrt0"), b.linkLocal6(t, "vrt1")
	// A packet socket for one EtherType sees only incoming frames: b's for a's, a's for b's.
	var seen, seenByA frames6
	go seen.run(listenFrames(t, b, "vrt1", etherTypeIPv6))
	go seenByA.run(listenFrames(t, a, "vrt0", etherTypeIPv6))

	cfgA := labConfig6("vrt0", 200, t.TempDir())
	cfgA.VirtualMAC = true
	cfgA.Logger = testLogger(t, "a")
	cfgB := labConfig6("vrt1", 100, t.TempDir())
	cfgB.NARouter = true
	cfgB.Logger = testLogger(t, "b")
	na := dialNode(t, a, cfgA)
	nb := dialNode(t, b, cfgB)

	poll.Until(t, 10*time.Second, "a is master", func() bool { return na.r.Status().State == StateMaster })
	poll.Until(t, 3*time.Second, "b follows a", func() bool {
		s := nb.r.Status()
		return s.State == StateBackup && s.MasterIP == llA
	})
	vmac := VirtualMAC6(51)
	if got := a.link(t, vmacName6(51)).Attrs().HardwareAddr; !bytes.Equal(got, vmac) {
		t.Errorf("%s has MAC %s, want %s", vmacName6(51), got, vmac)
	}
	// The node's own link-local address stays on the parent only (see vmacLink).
	for _, c := range []struct {
		p    netip.Prefix
		held bool
	}{{labLLVIP, true}, {labVIP6, true}, {netip.PrefixFrom(llA, 64), false}} {
		flags, ok := a.addr6Flags(t, vmacName6(51), c.p)
		if ok != c.held || flags&unix.IFA_F_TENTATIVE != 0 {
			t.Errorf("%s on %s: present %t, flags %#x; want present %t, not tentative", c.p, vmacName6(51), ok, flags, c.held)
		}
	}
	for _, p := range []netip.Prefix{labLLVIP, labVIP6} {
		if _, ok := b.addr6Flags(t, "vrt1", p); ok {
			t.Errorf("the Backup holds %s", p)
		}
	}
	poll.Until(t, 2*time.Second, "a's adverts and NAs seen by b", func() bool {
		return len(seen.match(isVRRP6)) > 0 && len(seen.match(isNA6(labVIP6.Addr()))) > 0
	})
	for _, f := range seen.match(isVRRP6) {
		if !bytes.Equal(f[6:12], vmac) || f[21] != 255 || !net.IP(f[22:38]).Equal(llA.AsSlice()) {
			t.Errorf("advert from %s (%s) hop limit %d; want from %s (%s), hop limit 255",
				net.IP(f[22:38]), net.HardwareAddr(f[6:12]), f[21], llA, vmac)
			break
		}
	}
	for _, f := range seen.match(isNA6(labVIP6.Addr())) {
		if !bytes.Equal(f[6:12], vmac) || !bytes.Equal(f[80:86], vmac) || f[58] != naFlagOverride {
			t.Errorf("NA from %s, target MAC %s, flags %#02x; want %s, %s, Override only",
				net.HardwareAddr(f[6:12]), net.HardwareAddr(f[80:86]), f[58], vmac, vmac)
		}
	}

	na.stop(t)
	poll.Until(t, 2*time.Second, "b takes over", func() bool { return nb.r.Status().State == StateMaster })
	for _, p := range []netip.Prefix{labLLVIP, labVIP6} {
		flags, ok := b.addr6Flags(t, "vrt1", p)
		if !ok || flags&unix.IFA_F_TENTATIVE != 0 {
			t.Errorf("%s on the new Master: present %t, flags %#x; want present, not tentative", p, ok, flags)
		}
	}
	if _, err := a.h.LinkByName(vmacName6(51)); err == nil {
		t.Errorf("%s left behind after Run returned", vmacName6(51))
	}
	macB := b.iface(t, "vrt1").HardwareAddr
	fromB := func(f []byte) bool { return isNA6(labVIP6.Addr())(f) && bytes.Equal(f[6:12], macB) }
	poll.Until(t, 2*time.Second, "the new Master's NAs", func() bool { return len(seenByA.match(fromB)) >= cfgB.GARPCount })
	for _, f := range seenByA.match(fromB) {
		if f[58] != naFlagRouter|naFlagOverride || !bytes.Equal(f[80:86], macB) || f[21] != 255 {
			t.Errorf("NA of the new Master: flags %#02x, target MAC %s, hop limit %d; want Router and Override, %s, 255",
				f[58], net.HardwareAddr(f[80:86]), f[21], macB)
		}
	}
	if s := nb.r.Status(); s.MasterIP != llB || len(s.Dropped) != 0 {
		t.Errorf("new Master: master %v, dropped %v; want %v and nothing dropped", s.MasterIP, s.Dropped, llB)
	}
	if s := na.r.Status(); len(s.Dropped) != 0 {
		t.Errorf("old Master dropped %v", s.Dropped)
	}
}

// A Primary that is still tentative (DAD runs when a link-local address is made, at boot or
// when the interface comes back up) cannot be sent from: the node stays out of the protocol,
// saying so, and joins as Backup once DAD is done.
func TestRouterIPv6WaitsForTentativePrimary(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	a.linkLocal6(t, "vrt0")
	a.do(t, func() {
		if err := writeSysctl(sysctlValue{"net/ipv6/conf/vrt0/accept_dad", "1"}); err != nil {
			t.Error(err)
		}
	})
	primary := netip.MustParsePrefix("fe80::99/64")
	dad := &netlink.Addr{IPNet: &net.IPNet{IP: primary.Addr().AsSlice(), Mask: net.CIDRMask(64, 128)}}
	if err := a.h.AddrAdd(a.link(t, "vrt0"), dad); err != nil { // no IFA_F_NODAD: tentative
		t.Fatal(err)
	}
	if flags, ok := a.addr6Flags(t, "vrt0", primary); !ok || flags&unix.IFA_F_TENTATIVE == 0 {
		t.Skipf("%s is not tentative right after it was added (flags %#x); nothing to test", primary, flags)
	}
	cfg := labConfig6("vrt0", 100, t.TempDir())
	cfg.Primary = primary.Addr()
	cfg.Logger = testLogger(t, "a")
	na := dialNode(t, a, cfg)
	poll.Until(t, 2*time.Second, "the fault names the tentative Primary", func() bool {
		return strings.Contains(na.r.Status().Fault, "tentative")
	})
	poll.Until(t, 10*time.Second, "a joins once DAD is done", func() bool {
		s := na.r.Status()
		return s.Fault == "" && s.State != StateInitialize
	})
	if flags, _ := a.addr6Flags(t, "vrt0", primary); flags&unix.IFA_F_TENTATIVE != 0 {
		t.Errorf("joined while %s is still tentative", primary)
	}
}
