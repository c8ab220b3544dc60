package vrrp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/vishvananda/netlink"
)

// testLogger sends a Router's logs to t.Log.
func testLogger(t *testing.T, node string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", node)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// node is one Router running in a namespace.
type node struct {
	r        *Router
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once

	mu     sync.Mutex
	events []Event
}

// dialNode dials cfg inside n and runs the Router until the test ends (or stop is called).
func dialNode(t *testing.T, n *testNS, cfg Config) *node {
	t.Helper()
	nd := &node{done: make(chan error, 1)}
	cfg.OnEvent = func(e Event) {
		nd.mu.Lock()
		nd.events = append(nd.events, e)
		nd.mu.Unlock()
	}
	var err error
	n.do(t, func() { nd.r, err = Dial(cfg) })
	if err != nil {
		t.Fatalf("Dial in %s: %v", n.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.cancel = cancel
	go func() { nd.done <- nd.r.Run(ctx) }()
	t.Cleanup(func() { nd.stop(t) })
	return nd
}

// stop cancels the Router and waits for Run to return.
func (nd *node) stop(t *testing.T) {
	t.Helper()
	nd.stopOnce.Do(func() {
		nd.cancel()
		select {
		case err := <-nd.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5 s of cancel")
		}
	})
}

func (nd *node) eventLog() []string {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	var out []string
	for _, e := range nd.events {
		out = append(out, fmt.Sprintf("%v->%v", e.From, e.To))
	}
	return out
}

func (nd *node) lastEvent() Event {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if len(nd.events) == 0 {
		return Event{}
	}
	return nd.events[len(nd.events)-1]
}

func labConfig(ifname string, primary netip.Prefix, prio uint8, dir string) Config {
	return Config{
		Interface:  ifname,
		VRID:       51,
		Priority:   prio,
		Preempt:    true,
		Primary:    primary.Addr(),
		VirtualIPs: []netip.Prefix{labVIP},
		StateDir:   dir,
	}
}

// Two Routers on a veth pair: the higher priority becomes Master and holds the VIP, the other
// follows it; the Master's gratuitous ARPs reach the peer; on cancel the Master resigns with a
// priority-0 advert and the Backup takes the VIP after Skew_Time instead of
// Master_Down_Interval.
func TestRoutersElectAndFailOver(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	arps := listenFrames(t, b, "vrt1", etherTypeARP)

	cfgA := labConfig("vrt0", labA, 200, t.TempDir())
	cfgA.Logger = testLogger(t, "a")
	cfgB := labConfig("vrt1", labB, 100, t.TempDir())
	cfgB.Logger = testLogger(t, "b")
	na := dialNode(t, a, cfgA)
	nb := dialNode(t, b, cfgB)

	poll.Until(t, 10*time.Second, "a holds the VIP", func() bool { return a.hasAddr(t, "vrt0", labVIP) })
	// The status is published once the whole step (addresses, first GARP, OnEvent) is done.
	poll.Until(t, time.Second, "a reports master", func() bool { return na.r.Status().State == StateMaster })
	if s := na.r.Status(); s.State != StateMaster || len(s.VirtualIPs) != 1 {
		t.Errorf("a: %+v, want master holding the VIP", s)
	}
	poll.Until(t, 2*time.Second, "b follows a", func() bool { return nb.r.Status().MasterIP == labA.Addr() })
	if s := nb.r.Status(); s.State != StateBackup || b.hasAddr(t, "vrt1", labVIP) {
		t.Errorf("b: state %v, holds VIP %v; want backup without the VIP", s.State, b.hasAddr(t, "vrt1", labVIP))
	}

	// The five gratuitous ARPs of the takeover, from a's MAC, 200 ms apart.
	macA := a.iface(t, "vrt0").HardwareAddr
	var seen []time.Time
	for len(seen) < DefaultGARPCount {
		nextFrame(t, arps, 3*time.Second, func(f []byte) bool {
			return len(f) >= 42 && bytes.Equal(f[6:12], macA) && binary.BigEndian.Uint16(f[20:22]) == 1 &&
				net.IP(f[28:32]).Equal(labVIP.Addr().AsSlice()) && net.IP(f[38:42]).Equal(labVIP.Addr().AsSlice())
		})
		seen = append(seen, time.Now())
	}
	t.Logf("gratuitous ARPs seen by the peer over %v", seen[len(seen)-1].Sub(seen[0]).Round(time.Millisecond))

	// Let b hear a few adverts, then stop a.
	time.Sleep(1500 * time.Millisecond)
	if nb.r.Status().State != StateBackup {
		t.Fatalf("b left backup while a was master: %+v", nb.r.Status())
	}
	stopped := time.Now()
	na.stop(t)
	took := poll.Until(t, 5*time.Second, "b holds the VIP", func() bool { return b.hasAddr(t, "vrt1", labVIP) })
	// OnEvent follows the installation of the addresses.
	poll.Until(t, time.Second, "b reports the takeover", func() bool { return nb.lastEvent().To == StateMaster })
	t.Logf("VIP on b %v after a's Run was cancelled (Skew_Time(100) = %v)", took.Round(time.Millisecond), SkewTime(100))
	if e := nb.lastEvent(); e.To != StateMaster || !strings.Contains(e.Reason, "resigned") {
		t.Errorf("b's takeover: %+v; want a transition to master caused by a's priority-0 advert", e)
	}
	if time.Since(stopped) > MasterDownInterval(time.Second, 100) {
		t.Errorf("takeover took longer than Master_Down_Interval: the priority-0 advert was not acted on")
	}
	if a.hasAddr(t, "vrt0", labVIP) {
		t.Error("a kept the VIP after Run returned")
	}
	if got, want := strings.Join(na.eventLog(), " "), "initialize->backup backup->master master->initialize"; got != want {
		t.Errorf("a's events: %s, want %s", got, want)
	}
	rec := readRecord(t, recordPath(cfgA.StateDir, "vrt0", 51))
	if len(rec.Addresses) != 0 {
		t.Errorf("a's record after shutdown: %+v, want empty", rec)
	}

	nb.stop(t)
	if b.hasAddr(t, "vrt1", labVIP) {
		t.Error("b kept the VIP after Run returned")
	}
}

// With VirtualMAC the Master's adverts and ARP come from 00-00-5E-00-01-{VRID}, the VIP lives
// on the macvlan (not on the parent), a peer resolves the VIP to the virtual MAC, a leftover
// macvlan from a crash is replaced, and shutdown removes the macvlan and restores the parent's
// ARP settings.
func TestRouterVirtualMAC(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	needMacvlan(t, a, "vrt0")
	vmac := VirtualMAC(51)
	adverts := listenFrames(t, b, "vrt1", etherTypeIP)
	arps := listenFrames(t, b, "vrt1", etherTypeARP)

	// A crashed run's macvlan, still holding the VIP.
	left := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: vmacName(51), ParentIndex: a.link(t, "vrt0").Attrs().Index, HardwareAddr: vmac},
		Mode:      netlink.MACVLAN_MODE_BRIDGE,
	}
	if err := a.h.LinkAdd(left); err != nil {
		t.Fatalf("creating the leftover macvlan: %v", err)
	}
	a.addAddr(t, vmacName(51), labVIP)
	leftIndex := a.link(t, vmacName(51)).Attrs().Index

	cfg := labConfig("vrt0", labA, 255, t.TempDir()) // the owner: Master at once
	cfg.VirtualMAC = true
	cfg.Logger = testLogger(t, "a")
	na := dialNode(t, a, cfg)

	if idx := a.link(t, vmacName(51)).Attrs().Index; idx == leftIndex {
		t.Error("the leftover macvlan was reused instead of replaced")
	}
	poll.Until(t, 3*time.Second, "VIP on the macvlan", func() bool { return a.hasAddr(t, vmacName(51), labVIP) })
	if a.hasAddr(t, "vrt0", labVIP) {
		t.Error("VIP on the parent interface in virtual-MAC mode")
	}
	for _, s := range []struct{ file, want string }{
		{"net/ipv4/conf/vrt0/arp_ignore", "1"},
		{"net/ipv4/conf/vrt0/arp_announce", "2"},
		{"net/ipv4/conf/vrrp.51/arp_ignore", "1"},
		{"net/ipv6/conf/vrrp.51/disable_ipv6", "1"},
	} {
		if got := readSysctlIn(t, a, s.file); got != s.want {
			t.Errorf("%s = %q, want %q", s.file, got, s.want)
		}
	}

	adv := nextFrame(t, adverts, 3*time.Second, func(f []byte) bool { return len(f) > 34 && f[14+9] == ipProtoVRRP })
	if tos, ttl := adv[14+1], adv[14+8]; tos != tosInternetControl || ttl != 255 {
		t.Errorf("advert with TOS %#x and TTL %d, want %#x and 255", tos, ttl, tosInternetControl)
	}
	if got := net.HardwareAddr(adv[6:12]); !bytes.Equal(got, vmac) {
		t.Errorf("advert from MAC %v, want %v", got, vmac)
	}
	if !bytes.Equal(adv[0:6], []byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x12}) || !net.IP(adv[26:30]).Equal(labA.Addr().AsSlice()) {
		t.Errorf("advert frame header % x: want to 01:00:5e:00:00:12 from IP %v", adv[:34], labA.Addr())
	}
	garp := nextFrame(t, arps, 3*time.Second, func(f []byte) bool {
		return len(f) >= 42 && net.IP(f[28:32]).Equal(labVIP.Addr().AsSlice())
	})
	if !bytes.Equal(garp[6:12], vmac) || !bytes.Equal(garp[22:28], vmac) {
		t.Errorf("gratuitous ARP % x: want sent from and announcing %v", garp[:42], vmac)
	}

	// The peer resolves the VIP: only the macvlan answers, with the virtual MAC.
	b.do(t, func() {
		c, err := net.Dial("udp4", net.JoinHostPort(labVIP.Addr().String(), "9"))
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	})
	poll.Until(t, 3*time.Second, "peer resolves the VIP", func() bool {
		return bytes.Equal(neighMAC(t, b, "vrt1", labVIP.Addr()), vmac)
	})

	// The Master's adverts leave from the macvlan and must not come back to it through the
	// parent (they would be counted as "own"). Wait for the next one to be sure.
	nextFrame(t, adverts, 3*time.Second, func(f []byte) bool { return len(f) > 34 && f[14+9] == ipProtoVRRP })
	time.Sleep(50 * time.Millisecond)
	if s := na.r.Status(); len(s.Dropped) != 0 {
		t.Errorf("Master dropped %v", s.Dropped)
	}
	na.stop(t)
	if _, err := a.h.LinkByName(vmacName(51)); err == nil {
		t.Error("macvlan still there after Run returned")
	}
	if got := readSysctlIn(t, a, "net/ipv4/conf/vrt0/arp_ignore"); got != "0" {
		t.Errorf("parent arp_ignore = %s after shutdown, want the original 0", got)
	}
}

func readSysctlIn(t *testing.T, n *testNS, path string) string {
	t.Helper()
	var b []byte
	var err error
	n.do(t, func() { b, err = os.ReadFile(filepath.Join(sysctlRoot, path)) })
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return strings.TrimSpace(string(b))
}

// neighMAC is the link-layer address n's neighbour table holds for ip, or nil.
func neighMAC(t *testing.T, n *testNS, ifname string, ip netip.Addr) net.HardwareAddr {
	t.Helper()
	ns, err := n.h.NeighList(n.link(t, ifname).Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("neighbours: %v", err)
	}
	for _, e := range ns {
		if e.IP.Equal(ip.AsSlice()) && e.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE) != 0 {
			return e.HardwareAddr
		}
	}
	return nil
}

// Unicast peers, and a swap: the Master lowers its priority below the Backup's, the Backup
// (preempting) takes over and the old Master steps down on its first advert, so the VIP moves
// without either node stopping. Every advert on the wire is unicast to the peer. Node a runs
// in virtual-MAC mode: its unicast adverts must not teach b that a's own address lives at the
// virtual MAC (which moves to b with the swap).
func TestRoutersUnicastSwap(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	needMacvlan(t, a, "vrt0")
	sniff := listenFrames(t, b, "vrt1", etherTypeIP)
	var adverts advertLog
	go adverts.run(sniff)

	cfgA := labConfig("vrt0", labA, 200, t.TempDir())
	cfgA.Unicast, cfgA.Peers = true, []netip.Addr{labB.Addr()}
	cfgA.VirtualMAC = true // mixed modes, as between FRR and keepalived
	cfgA.Logger = testLogger(t, "a")
	cfgB := labConfig("vrt1", labB, 100, t.TempDir())
	cfgB.Unicast, cfgB.Peers = true, []netip.Addr{labA.Addr()}
	cfgB.Logger = testLogger(t, "b")
	na := dialNode(t, a, cfgA)
	nb := dialNode(t, b, cfgB)

	poll.Until(t, 10*time.Second, "a is master", func() bool { return na.r.Status().State == StateMaster })
	poll.Until(t, 3*time.Second, "b follows a", func() bool { return nb.r.Status().MasterIP == labA.Addr() })
	if !a.hasAddr(t, vmacName(51), labVIP) || b.hasAddr(t, "vrt1", labVIP) {
		t.Fatalf("VIP on a: %v, on b: %v; want a only", a.hasAddr(t, vmacName(51), labVIP), b.hasAddr(t, "vrt1", labVIP))
	}

	if mac := neighMAC(t, b, "vrt1", labA.Addr()); mac != nil && bytes.Equal(mac, VirtualMAC(51)) {
		t.Errorf("b resolves a's own address %v to the virtual MAC", labA.Addr())
	}

	na.r.SetPriority(50)
	poll.Until(t, 6*time.Second, "b is master", func() bool { return nb.r.Status().State == StateMaster })
	poll.Until(t, 3*time.Second, "a steps down", func() bool { return na.r.Status().State == StateBackup })
	if !b.hasAddr(t, "vrt1", labVIP) || a.hasAddr(t, vmacName(51), labVIP) {
		t.Errorf("after the swap VIP on a: %v, on b: %v; want b only", a.hasAddr(t, vmacName(51), labVIP), b.hasAddr(t, "vrt1", labVIP))
	}
	if s := na.r.Status(); s.Priority != 50 || s.MasterIP != labB.Addr() {
		t.Errorf("a after the swap: %+v", s)
	}
	for _, s := range []Status{na.r.Status(), nb.r.Status()} {
		if len(s.Dropped) != 0 {
			t.Errorf("dropped %v, want nothing", s.Dropped)
		}
	}

	adverts.mu.Lock()
	defer adverts.mu.Unlock()
	if len(adverts.adverts) == 0 {
		t.Fatal("no adverts seen")
	}
	for _, ad := range adverts.adverts {
		if ad.groupMAC || !(ad.src == labA.Addr() && ad.dst == labB.Addr() || ad.src == labB.Addr() && ad.dst == labA.Addr()) {
			t.Errorf("advert %+v: want unicast between the peers", ad)
			break
		}
	}
}
