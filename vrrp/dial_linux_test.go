package vrrp

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

func TestDialErrors(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	// A link that happens to carry the virtual-MAC link's name but is not ours.
	foreign := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vmacName(51)}, PeerName: "vrt9"}
	if err := a.h.LinkAdd(foreign); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no interface", func(c *Config) { c.Interface = "" }, "Interface"},
		{"unknown interface", func(c *Config) { c.Interface = "vrt-nope" }, `"vrt-nope"`},
		{"primary not on interface", func(c *Config) { c.Primary = netip.MustParseAddr("192.0.2.9") }, "192.0.2.9 is not configured"},
		{"foreign link with the virtual-MAC name", func(c *Config) { c.VirtualMAC = true }, "refusing to touch it"},
		{"VRID 0, before any link is made", func(c *Config) { c.VRID, c.VirtualMAC = 0, true }, "VRID 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := labConfig("vrt0", labA, 100, t.TempDir())
			tc.mod(&cfg)
			var err error
			a.do(t, func() {
				var r *Router
				if r, err = Dial(cfg); err == nil {
					r.Close()
				}
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Dial: %v; want an error mentioning %s", err, tc.want)
			}
		})
	}
	if _, err := a.h.LinkByName(vmacName(51)); err != nil {
		t.Errorf("the foreign %s is gone: %v", vmacName(51), err)
	}
	if _, err := a.h.LinkByName(vmacName(0)); err == nil {
		t.Errorf("%s was created for an invalid configuration", vmacName(0))
	}
}

// Dial picks the interface's own address when Primary is unset, and Close releases what Dial
// set up for a Router that never ran, the virtual-MAC link included.
func TestDialDefaultsAndClose(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	needMacvlan(t, a, "vrt0")
	// The VIP is listed first (it becomes the subnet's primary address in the kernel's sense),
	// yet a virtual address is never taken for this node's own.
	if err := a.h.AddrDel(a.link(t, "vrt0"), netlinkAddr(labA)); err != nil {
		t.Fatal(err)
	}
	a.addAddr(t, "vrt0", labVIP)
	a.addAddr(t, "vrt0", labA)
	if got := a.addrs(t, "vrt0"); len(got) != 2 || got[0] != labVIP {
		t.Fatalf("addresses %v: want the VIP listed first", got)
	}
	cfg := labConfig("vrt0", netip.Prefix{}, 100, t.TempDir())
	cfg.VirtualIPs = []netip.Prefix{labVIP}
	cfg.VirtualMAC = true
	cfg.Logger = slog.New(slog.DiscardHandler)
	var r *Router
	var err error
	a.do(t, func() { r, err = Dial(cfg) })
	if err != nil {
		t.Fatal(err)
	}
	if r.cfg.Primary != labA.Addr() {
		t.Errorf("Primary = %v, want %v", r.cfg.Primary, labA.Addr())
	}
	if r.cfg.GARPCount != DefaultGARPCount || r.cfg.GARPInterval != DefaultGARPInterval || r.cfg.AdvertInterval != DefaultAdvertInterval {
		t.Errorf("defaults: %d GARPs every %v, adverts every %v", r.cfg.GARPCount, r.cfg.GARPInterval, r.cfg.AdvertInterval)
	}
	if _, err := a.h.LinkByName(vmacName(51)); err != nil {
		t.Fatalf("no virtual-MAC link after Dial: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := a.h.LinkByName(vmacName(51)); err == nil {
		t.Error("virtual-MAC link left after Close")
	}
	if !a.hasAddr(t, "vrt0", labVIP) {
		t.Error("Close removed an address Dial did not add")
	}
}

// BenchmarkAddresserAddRemove measures what a takeover and a release cost the Router on top
// of the protocol: one Add and one Remove of a virtual address, each an address dump, a netlink
// request and its ACK, and the Flush that follows off the takeover path. With a record (in
// StateDir, under os.TempDir), the address is claimed first, as Dial does.
func BenchmarkAddresserAddRemove(b *testing.B) {
	for _, withRecord := range []bool{false, true} {
		name := "no-record"
		if withRecord {
			name = "record"
		}
		b.Run(name, func(b *testing.B) {
			a, peer := newTestNS(b), newTestNS(b)
			connect(b, a, "vrt0", labA, peer, "vrt1", labB)
			path := ""
			if withRecord {
				path = recordPath(b.TempDir(), "vrt0", 51)
			}
			ad := newNetlinkAddresser(a.h, a.link(b, "vrt0"), path, slog.New(slog.DiscardHandler))
			defer ad.Close()
			vips := []netip.Prefix{labVIP}
			if err := ad.removeStale(a.h, []string{"vrt0"}); err != nil {
				b.Fatal(err)
			}
			if err := ad.claim(vips); err != nil {
				b.Fatal(err)
			}
			var add, flush time.Duration
			for b.Loop() {
				start := time.Now()
				if err := ad.Add(vips); err != nil {
					b.Fatal(err)
				}
				add += time.Since(start)
				start = time.Now()
				if err := ad.Flush(); err != nil {
					b.Fatal(err)
				}
				flush += time.Since(start)
				if err := ad.Remove(vips); err != nil {
					b.Fatal(err)
				}
				if err := ad.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(add.Microseconds())/float64(b.N), "add-µs/op")
			b.ReportMetric(float64(flush.Microseconds())/float64(b.N), "flush-µs/op")
		})
	}
}

// A node that crashed as Master left its VIP behind: the next Dial removes it (and only it)
// before the new Router starts, so the restarted node does not hold the VIP beside the new
// Master.
func TestDialRemovesStaleVIP(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	foreign := netip.MustParsePrefix("192.0.2.101/24")
	a.addAddr(t, "vrt0", labVIP)
	a.addAddr(t, "vrt0", foreign)
	dir := t.TempDir()
	rec, _ := json.Marshal(addrRecord{Interface: "vrt0", Addresses: []netip.Prefix{labVIP}, BootID: readBootID()})
	if err := os.WriteFile(recordPath(dir, "vrt0", 51), rec, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := labConfig("vrt0", labA, 100, dir)
	cfg.VirtualIPs = []netip.Prefix{labVIP, foreign}
	var r *Router
	var err error
	a.do(t, func() { r, err = Dial(cfg) })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if a.hasAddr(t, "vrt0", labVIP) {
		t.Error("Dial kept the stale VIP recorded by the crashed run")
	}
	if !a.hasAddr(t, "vrt0", foreign) {
		t.Error("Dial removed an address that was never recorded")
	}
	// The VIP it removed is claimed again, for the next takeover; the foreign one is not.
	want := addrRecord{Interface: "vrt0", Addresses: []netip.Prefix{labVIP}, BootID: readBootID()}
	if diff := cmp.Diff(want, readRecord(t, recordPath(dir, "vrt0", 51)), cmpPrefix); diff != "" {
		t.Errorf("record after Dial (-want +got):\n%s", diff)
	}
}
