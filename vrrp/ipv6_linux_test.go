package vrrp

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	labLLVIP = netip.MustParsePrefix("fe80::1/64")       // the group's link-local virtual address
	labVIP6  = netip.MustParsePrefix("2001:db8::100/64") // a global virtual address
)

// linkLocal6 waits until ifname in n has a link-local address that is not tentative and
// returns it. The kernel makes it asynchronously once the link has carrier; newTestNS turns
// DAD off, so it is usable as soon as it is there.
func (n *testNS) linkLocal6(t testing.TB, ifname string) netip.Addr {
	t.Helper()
	var ll netip.Addr
	poll.Until(t, 5*time.Second, n.name+": a usable link-local address on "+ifname, func() bool {
		for _, a := range n.addrs6(t, ifname) {
			if p, ok := ipNetPrefix(a.IPNet); ok && p.Addr().IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				ll = p.Addr()
				return true
			}
		}
		return false
	})
	return ll
}

// addrs6 lists the IPv6 addresses of the named link with their flags.
func (n *testNS) addrs6(t testing.TB, ifname string) []netlink.Addr {
	t.Helper()
	as, err := n.h.AddrList(n.link(t, ifname), netlink.FAMILY_V6)
	if err != nil {
		t.Fatalf("%s: listing IPv6 addresses of %s: %v", n.name, ifname, err)
	}
	return as
}

// addr6Flags returns the flags of p on the named link, and whether it is there.
func (n *testNS) addr6Flags(t testing.TB, ifname string, p netip.Prefix) (int, bool) {
	t.Helper()
	for _, a := range n.addrs6(t, ifname) {
		if q, ok := ipNetPrefix(a.IPNet); ok && q == p {
			return a.Flags, true
		}
	}
	return 0, false
}

// v3Advert marshals a VRRPv3 advert for labLLVIP sent from src to dst.
func v3Advert(t *testing.T, prio uint8, src, dst netip.Addr) []byte {
	t.Helper()
	a := Advertisement{Version: 3, Type: TypeAdvertisement, VRID: 51, Priority: prio,
		Interval: time.Second, Addresses: []netip.Addr{labLLVIP.Addr()}}
	b, err := a.Marshal(PseudoHeader{Src: src, Dst: dst})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openConn6(t *testing.T, n *testNS, ifname string, primary netip.Addr, peers []netip.Addr) *rawConn6 {
	t.Helper()
	return openIn(t, n, ifname, func(cc connConfig) (*rawConn6, error) { return newRawConn6(cc) }, primary, peers)
}

func receive6Within(t *testing.T, c *rawConn6, d time.Duration) Inbound {
	t.Helper()
	return receiveBy(t, c.pc, c, d)
}

// checkInbound6 asserts that in came from src to dst with hop limit 255, carrying sent, whose
// checksum verifies over the pseudo-header of that source and destination.
func checkInbound6(t *testing.T, in Inbound, src, dst netip.Addr, sent []byte) {
	t.Helper()
	if in.Src != src || in.Dst != dst || in.TTL != 255 {
		t.Errorf("received from %v to %v hop limit %d; want from %v to %v hop limit 255", in.Src, in.Dst, in.TTL, src, dst)
	}
	if !(PseudoHeader{Src: in.Src, Dst: in.Dst}).ChecksumValid(in.Payload) {
		t.Errorf("payload % x: checksum does not verify over the received pseudo-header %v -> %v", in.Payload, in.Src, in.Dst)
	}
	if !bytes.Equal(in.Payload, sent) {
		t.Errorf("payload % x, sent % x", in.Payload, sent)
	}
}

func TestRawConn6Multicast(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	llA, llB := a.linkLocal6(t, "vrt0"), b.linkLocal6(t, "vrt1")
	ca := openConn6(t, a, "vrt0", llA, nil)
	cb := openConn6(t, b, "vrt1", llB, nil)

	sent := v3Advert(t, 100, llA, vrrpGroup6)
	if err := ca.Send(sent, vrrpGroup6); err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkInbound6(t, receive6Within(t, cb, 2*time.Second), llA, vrrpGroup6, sent)
	// Multicast loopback is off: the sender does not read its own advert.
	if err := ca.pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if in, err := ca.Receive(); err == nil {
		t.Errorf("sender received %+v: multicast loopback is on", in)
	}
}

// keepalived's captured IPv6 advert, sent from keepalived's own source address, arrives byte
// for byte with the source and destination its checksum covers.
func TestRawConn6CarriesKeepalivedAdvert(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	a.linkLocal6(t, "vrt0")
	llB := b.linkLocal6(t, "vrt1")
	kaSrc := netip.MustParsePrefix("fe80::a8ae:beff:fe13:8616/64") // testdata/keepalived/v3-ipv6-1s.hex
	a.addAddr(t, "vrt0", kaSrc)
	ca := openConn6(t, a, "vrt0", kaSrc.Addr(), nil)
	cb := openConn6(t, b, "vrt1", llB, nil)

	golden := readHexFile(t, "testdata/keepalived/v3-ipv6-1s.hex")
	if err := ca.Send(golden, vrrpGroup6); err != nil {
		t.Fatal(err)
	}
	in := receive6Within(t, cb, 2*time.Second)
	checkInbound6(t, in, kaSrc.Addr(), vrrpGroup6, golden)
	var adv Advertisement
	if err := adv.Unmarshal(in.Payload, PseudoHeader{Src: in.Src, Dst: in.Dst}); err != nil {
		t.Errorf("Unmarshal with the received pseudo-header: %v", err)
	}
}

// In unicast mode adverts go to each peer, link-local or global, from the link-local address.
func TestRawConn6Unicast(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	llA, llB := a.linkLocal6(t, "vrt0"), b.linkLocal6(t, "vrt1")
	global := netip.MustParsePrefix("2001:db8::2/64")
	b.addAddr(t, "vrt1", global)
	a.addAddr(t, "vrt0", netip.MustParsePrefix("2001:db8::1/64")) // the on-link route to it
	ca := openConn6(t, a, "vrt0", llA, []netip.Addr{llB, global.Addr()})
	cb := openConn6(t, b, "vrt1", llB, []netip.Addr{llA})

	for _, dst := range []netip.Addr{llB, global.Addr()} {
		sent := v3Advert(t, 100, llA, dst)
		if err := ca.Send(sent, dst); err != nil {
			t.Fatalf("Send: %v", err)
		}
		checkInbound6(t, receive6Within(t, cb, 2*time.Second), llA, dst, sent)
	}
}

func TestNewRawConn6NeedsLinkLocal(t *testing.T) {
	ifi := &net.Interface{Index: 1, Name: "lo"}
	for _, src := range []netip.Addr{netip.MustParseAddr("2001:db8::1"), labA.Addr(), {}} {
		if c, err := newRawConn6(connConfig{recv: ifi, send: ifi, primary: src}); err == nil {
			c.Close()
			t.Errorf("newRawConn6 accepted source %v", src)
		}
	}
}

// naGolden is the NA for fe80::1 at 00:00:5e:00:02:33 from fe80::2, Router flag clear, field
// by field; the checksum was computed by hand over the pseudo-header (RFC 8200 section 8.1).
var naGolden = strings.Join([]string{
	"333300000001", "00005e000233", "86dd", // Ethernet: all-nodes group, virtual MAC, IPv6
	"60000000", "0020", "3a", "ff", // version 6; payload 32 bytes; ICMPv6; hop limit 255
	"fe800000000000000000000000000002", // source fe80::2
	"ff020000000000000000000000000001", // destination ff02::1
	"88", "00", "f967",                 // type 136, code 0, checksum
	"20000000",                         // flags: Override only
	"fe800000000000000000000000000001", // target fe80::1
	"02", "01", "00005e000233",         // Target Link-Layer Address option
}, "")

func TestBuildNAGolden(t *testing.T) {
	b := bytes.Repeat([]byte{0xee}, naFrameLen)
	hw := VirtualMAC6(51)
	src := netip.MustParseAddr("fe80::2")
	if err := buildNA(b, hw, src, labLLVIP.Addr(), false); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(naGolden, hex.EncodeToString(b)); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
	if icmpv6Sum(src, allNodes6, b[54:]) != 0xffff {
		t.Error("ICMPv6 checksum does not verify")
	}
	if err := buildNA(b, hw, src, labLLVIP.Addr(), true); err != nil {
		t.Fatal(err)
	}
	if flags := b[54+4]; flags != naFlagRouter|naFlagOverride || flags&naFlagSolicited != 0 {
		t.Errorf("flags %#02x with the Router flag; want R and O, not S", flags)
	}
	if icmpv6Sum(src, allNodes6, b[54:]) != 0xffff {
		t.Error("ICMPv6 checksum with the Router flag does not verify")
	}
	for _, bad := range []netip.Addr{labVIP.Addr(), netip.MustParseAddr("::ffff:192.0.2.1")} {
		if err := buildNA(b, hw, src, bad, false); err == nil {
			t.Errorf("buildNA accepted target %v", bad)
		}
	}
	if err := buildNA(b, hw[:4], src, labLLVIP.Addr(), false); err == nil {
		t.Error("buildNA accepted a 4-byte hardware address")
	}
}

// The NA goes on the wire as built, and the peer's kernel takes it: a stale neighbor entry for
// the target, pointing at another MAC, is overridden with the sender's.
func TestNAAnnouncerOnTheWire(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	llA := a.linkLocal6(t, "vrt0")
	b.linkLocal6(t, "vrt1")
	sniff := listenFrames(t, b, "vrt1", etherTypeIPv6)
	vrt1 := b.link(t, "vrt1")
	old := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	if err := b.h.NeighSet(&netlink.Neigh{LinkIndex: vrt1.Attrs().Index, Family: netlink.FAMILY_V6,
		State: netlink.NUD_STALE, IP: labVIP6.Addr().AsSlice(), HardwareAddr: old}); err != nil {
		t.Fatal(err)
	}

	ifi := a.iface(t, "vrt0")
	var ann *frameAnnouncer
	var err error
	a.do(t, func() { ann, err = newNAAnnouncer(ifi, llA, true) })
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()
	vips := []netip.Addr{labLLVIP.Addr(), labVIP6.Addr()}
	if err := ann.Announce(vips); err != nil {
		t.Fatalf("Announce: %v", err)
	}
	for _, ip := range vips {
		want := make([]byte, naFrameLen)
		if err := buildNA(want, ifi.HardwareAddr, llA, ip, true); err != nil {
			t.Fatal(err)
		}
		got := nextFrame(t, sniff, 2*time.Second, func(f []byte) bool {
			return len(f) >= naFrameLen && f[20] == ipProtoICMPv6 && f[54] == icmpv6NeighborAdvert &&
				net.IP(f[62:78]).Equal(ip.AsSlice())
		})
		if diff := cmp.Diff(hex.EncodeToString(want), hex.EncodeToString(got)); diff != "" {
			t.Errorf("NA for %v as received by the peer (-want +got):\n%s", ip, diff)
		}
	}
	poll.Until(t, 2*time.Second, "the peer's neighbor entry overridden", func() bool {
		ns, err := b.h.NeighList(vrt1.Attrs().Index, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			if n.IP.Equal(labVIP6.Addr().AsSlice()) {
				return bytes.Equal(n.HardwareAddr, ifi.HardwareAddr) && n.Flags&netlink.NTF_ROUTER != 0
			}
		}
		return false
	})
}

// IPv6 virtual addresses are installed without DAD, so they are never tentative, even on a
// link that runs DAD; they are ours to remove, and a crashed run's are removed at start.
func TestAddresserIPv6(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	a.do(t, func() {
		if err := writeSysctl(sysctlValue{"net/ipv6/conf/vrt0/accept_dad", "1"}); err != nil {
			t.Error(err)
		}
	})
	foreign := netip.MustParsePrefix("2001:db8::101/64")
	a.addAddr(t, "vrt0", foreign)
	dir := t.TempDir()
	path := recordPath6(dir, "vrt0", 51)
	log := slog.New(slog.DiscardHandler)
	ad := newNetlinkAddresser(a.h, a.link(t, "vrt0"), path, log)
	if err := ad.removeStale(a.h, []string{"vrt0"}); err != nil {
		t.Fatal(err)
	}
	vips := []netip.Prefix{labLLVIP, labVIP6, foreign}
	if err := ad.claim(vips); err != nil {
		t.Fatal(err)
	}
	if err := ad.Add(vips); err != nil {
		t.Fatalf("Add: %v", err)
	}
	for _, v := range vips {
		flags, ok := a.addr6Flags(t, "vrt0", v)
		switch {
		case !ok:
			t.Errorf("%v not on vrt0 after Add", v)
		case flags&unix.IFA_F_TENTATIVE != 0 && v != foreign:
			t.Errorf("%v is tentative (flags %#x)", v, flags)
		}
	}
	want := addrRecord{Interface: "vrt0", Addresses: []netip.Prefix{labLLVIP, labVIP6}, BootID: readBootID()}
	if diff := cmp.Diff(want, readRecord(t, path), cmpPrefix); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}

	// A crash as Master (no Remove, no Close): the next start removes ours, not the foreign one.
	next := newNetlinkAddresser(a.h, a.link(t, "vrt0"), path, log)
	if err := next.removeStale(a.h, []string{"vrt0"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range vips {
		if _, ok := a.addr6Flags(t, "vrt0", v); ok != (v == foreign) {
			t.Errorf("after the stale removal %v on vrt0: %t", v, ok)
		}
	}
	if err := next.Close(); err != nil {
		t.Error(err)
	}
	ad.file.close()
}

func TestConfigIPv6Groups(t *testing.T) {
	base := Config{Interface: "eth0", Version: 3, VRID: 51, Priority: 100}
	for _, tc := range []struct {
		name    string
		vips    []string
		peers   []string
		version uint8
		err     string
	}{
		{name: "link-local first", vips: []string{"fe80::1/64", "2001:db8::100/64"}},
		{name: "global first", vips: []string{"2001:db8::100/64", "fe80::1/64"}, err: "must be its link-local virtual address"},
		{name: "mixed", vips: []string{"fe80::1/64", "192.0.2.100/24"}, err: "IPv4 and IPv6 need a group each"},
		{name: "mixed the other way", vips: []string{"192.0.2.100/24", "fe80::1/64"}, err: "IPv4 and IPv6 need a group each"},
		{name: "mapped", vips: []string{"::ffff:192.0.2.100/120"}, err: "not an IP address"},
		{name: "twice", vips: []string{"fe80::1/64", "fe80::1/128"}, err: "listed twice"},
		{name: "IPv4 peer", vips: []string{"fe80::1/64"}, peers: []string{"192.0.2.2"}, err: "not an address of the virtual addresses' family"},
		{name: "IPv6 peer", vips: []string{"fe80::1/64"}, peers: []string{"fe80::2"}},
		{name: "IPv6 peer in an IPv4 group", vips: []string{"192.0.2.100/24"}, peers: []string{"fe80::2"}, err: "not an address of the virtual addresses' family"},
		{name: "IPv6 in version 2", version: 2, vips: []string{"fe80::1/64"}, err: "need Version 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			if tc.version != 0 {
				c.Version = tc.version
			}
			for _, v := range tc.vips {
				c.VirtualIPs = append(c.VirtualIPs, netip.MustParsePrefix(v))
			}
			for _, p := range tc.peers {
				c.Unicast = true
				c.Peers = append(c.Peers, netip.MustParseAddr(p))
			}
			_, err := c.withDefaults()
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("withDefaults: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("withDefaults: %v, want an error containing %q", err, tc.err)
			}
		})
	}
}
