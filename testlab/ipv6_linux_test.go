package testlab

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// ipv6Group is the lab's IPv6 group: VRRPv3 at 1 s, the link-local virtual address fe80::1
// first and 2001:db8::64 (host 100), which the Timeline follows.
func ipv6Group() VRRPConfig {
	return VRRPConfig{Version: 3, AdvertInterval: time.Second, VIPs: DefaultVIPs6(),
		GARPCount: 3, GARPInterval: 100 * time.Millisecond}
}

// checkIPv6Master checks what RFC 9568 asks of an IPv6 Master m of cfg: adverts from its
// link-local address to ff02::12 with hop limit 255, version 3, the link-local virtual address
// first; both virtual addresses on m and not tentative; and, from since, cfg.GARPCount
// unsolicited Neighbor Advertisements for the followed VIP to ff02::1 with hop limit 255,
// Override set, Solicited clear, the Router flag as configured and m's MAC as the target's.
func checkIPv6Master(t *testing.T, ctx context.Context, tl *Timeline, m *Router, cfg VRRPConfig, since time.Time) {
	t.Helper()
	a, err := tl.WaitAdvert(ctx, since, "an IPv6 advert of "+m.String(), From(m.Node, vrid(m)))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{cfg.VIPs[0].Addr(), cfg.VIPs[1].Addr()}
	if a.Src != m.Node.LinkLocal || a.Dst != netip.MustParseAddr("ff02::12") || a.TTL != 255 ||
		a.Version != 3 || !slices.Equal(a.Addresses, want) || a.Interval != cfg.AdvertInterval {
		t.Errorf("advert of %s: %+v; want from %s to ff02::12, hop limit 255, version 3, interval %v, addresses %v",
			m, a, m.Node.LinkLocal, cfg.AdvertInterval, want)
	}
	for _, v := range cfg.VIPs {
		if ok, err := m.Node.HasAddr(v.Addr()); err != nil || !ok {
			t.Errorf("%s lacks %s (%v)", m, v, err)
		}
	}
	for _, e := range tl.VIPEvents() {
		if e.Node == m.Node && e.Present && e.Tentative {
			t.Errorf("%s: %s was tentative at %s (duplicate address detection ran)", m, e.Addr, e.At.Format("15:04:05.000"))
		}
	}
	mac, err := m.Node.MAC()
	if err != nil {
		t.Fatal(err)
	}
	after := since
	for i := range cfg.GARPCount {
		na, err := tl.WaitNA(ctx, after)
		if err != nil {
			t.Fatalf("NA %d of %d from %s: %v", i+1, cfg.GARPCount, m, err)
		}
		after = na.At
		if na.Src != m.Node.LinkLocal || na.HopLimit != 255 || !na.Override || na.Solicited ||
			na.Router != cfg.NARouter || !bytes.Equal(na.TargetMAC, mac) || !bytes.Equal(na.SrcMAC, mac) {
			t.Errorf("NA %d for %s: %+v; want from %s (%s), hop limit 255, O set, S clear, R %t, target MAC %s",
				i+1, tl.VIP, na, m.Node.LinkLocal, mac, cfg.NARouter, mac)
		}
	}
}

// Two redundantd over IPv6 (VRRPv3): one Master, which holds fe80::1 and 2001:db8::100 without
// DAD and announces them with NAs; when it is killed the Backup takes over the same way.
func TestRedundantdIPv6PairFailsOver(t *testing.T) {
	t.Parallel()
	cfg := ipv6Group()
	cfg.NARouter = true
	l, ctx, tl := recordedLabFor(t, 60*time.Second, cfg.VIPs[1].Addr())
	start := time.Now()
	master, backup := pair(t, ctx, l, tl, Redundantd, Redundantd, cfg)
	checkIPv6Master(t, ctx, tl, master, cfg, start)
	holdFor(t, ctx, l, tl, 3, master, backup)

	f, err := MeasureFailover(ctx, tl, master, backup, false)
	if err != nil {
		t.Fatal(err)
	}
	checkFailover(t, f)
	if f.FirstNA.At.IsZero() {
		t.Errorf("no Neighbor Advertisement from the new Master %s", backup)
	}
	if err := backup.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	checkIPv6Master(t, ctx, tl, backup, cfg, f.Ref.At)

	// The killed node left its addresses behind (a crash); restarted, it removes them and
	// comes back as Backup.
	if err := master.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := master.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	for _, v := range cfg.VIPs {
		if ok, err := master.Node.HasAddr(v.Addr()); err != nil || ok {
			t.Errorf("restarted %s still holds %s (%v)", master, v, err)
		}
	}
	holdFor(t, ctx, l, tl, 2, backup, master)
}

// Interoperability with keepalived over IPv6 (vrrp_version 3), both directions, as for v2: a
// kill, a healthy Master respected, a priority-0 handover.
func TestInteropIPv6KeepalivedMasterRedundantdBackup(t *testing.T) {
	interop(t, Keepalived, Redundantd, ipv6Group())
}

func TestInteropIPv6RedundantdMasterKeepalivedBackup(t *testing.T) {
	interop(t, Redundantd, Keepalived, ipv6Group())
}

// The same over IPv6 at 100 ms adverts.
func TestInteropIPv6At100msKeepalivedMasterRedundantdBackup(t *testing.T) {
	cfg := ipv6Group()
	cfg.AdvertInterval = 100 * time.Millisecond
	interop(t, Keepalived, Redundantd, cfg)
}

func TestInteropIPv6At100msRedundantdMasterKeepalivedBackup(t *testing.T) {
	cfg := ipv6Group()
	cfg.AdvertInterval = 100 * time.Millisecond
	interop(t, Redundantd, Keepalived, cfg)
}
