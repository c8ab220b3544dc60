package vrrp

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/redundantd/redundantd/testlab/poll"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// portFrames records every frame a node sends into the switch: a packet socket for every
// EtherType on the node's bridge port in the switch namespace (a socket for one EtherType
// would see nothing: the bridge takes the frames first), which keeps only what arrives on
// the port, not what the bridge sends out of it.
type portFrames struct {
	mu     sync.Mutex
	frames []seenFrame
}

type seenFrame struct {
	at time.Time
	b  []byte
}

func sniffPort(t *testing.T, sw *testNS, port string) *portFrames {
	t.Helper()
	incoming, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	ifi := sw.iface(t, port)
	var c *packet.Conn
	sw.do(t, func() { c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: incoming}) })
	if err != nil {
		t.Fatalf("packet socket on %s: %v", port, err)
	}
	t.Cleanup(func() { c.Close() })
	pf := &portFrames{}
	go func() {
		b := make([]byte, 2048)
		for {
			n, _, err := c.ReadFrom(b)
			if err != nil {
				return
			}
			pf.mu.Lock()
			pf.frames = append(pf.frames, seenFrame{time.Now(), bytes.Clone(b[:n])})
			pf.mu.Unlock()
		}
	}()
	return pf
}

// since returns the frames seen from t on for which keep is true.
func (pf *portFrames) since(from time.Time, keep func([]byte) bool) [][]byte {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	var out [][]byte
	for _, f := range pf.frames {
		if !f.at.Before(from) && keep(f.b) {
			out = append(out, f.b)
		}
	}
	return out
}

func fromMAC(mac net.HardwareAddr) func([]byte) bool {
	return func(f []byte) bool { return len(f) >= 14 && bytes.Equal(f[6:12], mac) }
}

// mldReport recognises an MLD report or done (RFC 2710, RFC 3810) behind the Hop-by-Hop
// header the kernel sends them with, and returns its ICMPv6 type and, for an MLDv2 report,
// its records' types.
func mldReport(f []byte) (uint8, []uint8, bool) {
	if len(f) < 14+40+8+4 || binary.BigEndian.Uint16(f[12:14]) != etherTypeIPv6 || f[20] != 0 || f[54] != ipProtoICMPv6 {
		return 0, nil, false
	}
	icmp := f[14+40+8*(1+int(f[55])):]
	switch icmp[0] {
	case 131, 132:
		return icmp[0], nil, true
	case 143:
		var recs []uint8
		n := int(binary.BigEndian.Uint16(icmp[6:8]))
		r := icmp[8:]
		for range n {
			if len(r) < 20 {
				break
			}
			recs = append(recs, r[0])
			r = r[20+int(r[1])*4+16*int(binary.BigEndian.Uint16(r[2:4])):]
		}
		return 143, recs, true
	}
	return 0, nil, false
}

// isLeave: an MLDv1 done, or an MLDv2 report leaving a group (CHANGE_TO_INCLUDE_MODE, 3).
func isLeave(f []byte) bool {
	typ, recs, ok := mldReport(f)
	return ok && (typ == 132 || (typ == 143 && bytes.IndexByte(recs, 3) >= 0))
}

// sendMLDQuery sends an MLDv2 general query (RFC 3810 section 5.1) to ff02::1 from n's
// link-local address on ifname, as a querier (a router, or a snooping switch) on the segment
// does every 125 s: hop limit 1, Router Alert, Maximum Response Code 1 ms, so that every
// listener answers within a jiffy.
func sendMLDQuery(t *testing.T, n *testNS, ifname string) time.Time {
	t.Helper()
	ifi := n.iface(t, ifname)
	src := n.linkLocal6(t, ifname)
	icmp := make([]byte, 28)
	icmp[0] = 130                            // Multicast Listener Query
	binary.BigEndian.PutUint16(icmp[4:6], 1) // Maximum Response Code: 1 ms
	icmp[24] = 2                             // QRV 2
	icmp[25] = 125                           // QQIC 125 s
	binary.BigEndian.PutUint16(icmp[2:4], ^icmpv6Sum(src, allNodes6, icmp))
	hbh := []byte{ipProtoICMPv6, 0, 5, 2, 0, 0, 1, 0} // Router Alert (MLD), PadN
	f := make([]byte, 0, 14+40+len(hbh)+len(icmp))
	f = append(f, allNodesMAC...)
	f = append(f, ifi.HardwareAddr...)
	f = binary.BigEndian.AppendUint16(f, etherTypeIPv6)
	f = append(f, 0x60, 0, 0, 0)
	f = binary.BigEndian.AppendUint16(f, uint16(len(hbh)+len(icmp)))
	f = append(f, 0, 1) // next header Hop-by-Hop, hop limit 1
	s, d := src.As16(), allNodes6.As16()
	f = append(append(append(append(f, s[:]...), d[:]...), hbh...), icmp...)

	var c *packet.Conn
	var err error
	n.do(t, func() { c, err = packet.Listen(ifi, packet.Raw, etherTypeIPv6, nil) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := time.Now()
	if _, err := c.WriteTo(f, &packet.Addr{HardwareAddr: allNodesMAC}); err != nil {
		t.Fatalf("sending the MLD query: %v", err)
	}
	return sent
}

// answered waits until the MLD query sent at q has been answered from mac (the node's own
// MAC: its parent interface is in groups) and then until three adverts of the Master
// (advertising every 100 ms) have come after that answer: each listener answers within a
// jiffy of the query, so anything the query made a node send is seen by then.
func answered(t *testing.T, q time.Time, listener *portFrames, mac net.HardwareAddr, master *portFrames) {
	t.Helper()
	isReport := func(f []byte) bool { _, _, ok := mldReport(f); return ok && fromMAC(mac)(f) }
	var at time.Time
	poll.Until(t, 2*time.Second, "the query answered from "+mac.String(), func() bool {
		listener.mu.Lock()
		defer listener.mu.Unlock()
		for _, f := range listener.frames {
			if !f.at.Before(q) && isReport(f.b) {
				at = f.at
				return true
			}
		}
		return false
	})
	poll.Until(t, 2*time.Second, "three adverts of the Master after the answers", func() bool {
		return len(master.since(at, isVRRP6)) >= 3
	})
}

// Issue 8 section 1, virtual-MAC mode for IPv6: a Backup sends no frame at all from the
// virtual MAC, at start-up, at an MLD query of a querier on the segment, or when it leaves
// Master, so that a learning switch keeps the virtual MAC at the Master's port; the Master's
// adverts (from its own link-local address) and Neighbor Advertisements come from it, and
// failover works both ways. Both nodes run in virtual-MAC mode, as in a deployment.
func TestIPv6VirtualMACBackupSilent(t *testing.T) {
	sw := newSwitch(t)
	a, b, c := newTestNS(t), newTestNS(t), newTestNS(t)
	plug(t, sw, "pa", a, "vrt0", labA)
	plug(t, sw, "pb", b, "vrt1", labB)
	plug(t, sw, "pc", c, "vrt2", netip.MustParsePrefix("192.0.2.3/24"))
	needMacvlan(t, a, "vrt0")
	llA, llB := a.linkLocal6(t, "vrt0"), b.linkLocal6(t, "vrt1")
	macA, macB := a.iface(t, "vrt0").HardwareAddr, b.iface(t, "vrt1").HardwareAddr
	vmac := VirtualMAC6(51)
	fromA, fromB := sniffPort(t, sw, "pa"), sniffPort(t, sw, "pb")
	start := time.Now()

	cfgA := labConfig6("vrt0", 200, t.TempDir())
	cfgA.VirtualMAC = true
	cfgA.Logger = testLogger(t, "a")
	cfgB := labConfig6("vrt1", 100, t.TempDir())
	cfgB.VirtualMAC = true
	cfgB.Logger = testLogger(t, "b")
	na := dialNode(t, a, cfgA)
	nb := dialNode(t, b, cfgB)
	na.waitEvent(t, 0, StateBackup, StateMaster, CauseMasterDown)
	poll.Until(t, 3*time.Second, "b follows a", func() bool {
		s := nb.r.Status()
		return s.State == StateBackup && s.MasterIP == llA
	})

	// masterFrames checks that m's adverts (from ll) and NAs came from the virtual MAC after
	// from.
	masterFrames := func(name string, m *portFrames, ll netip.Addr, from time.Time) {
		t.Helper()
		poll.Until(t, 2*time.Second, name+"'s adverts and NAs from the virtual MAC", func() bool {
			return len(m.since(from, func(f []byte) bool { return isVRRP6(f) && fromMAC(vmac)(f) })) > 0 &&
				len(m.since(from, func(f []byte) bool { return isNA6(labVIP6.Addr())(f) && fromMAC(vmac)(f) })) > 0
		})
		for _, f := range m.since(from, isVRRP6) {
			if !bytes.Equal(f[6:12], vmac) || !net.IP(f[22:38]).Equal(ll.AsSlice()) {
				t.Errorf("%s's advert from %s (%s); want from %s (%s)", name, net.IP(f[22:38]), net.HardwareAddr(f[6:12]), ll, vmac)
				break
			}
		}
	}
	// silent checks that bk sent nothing from the virtual MAC after from.
	silent := func(name string, bk *portFrames, from time.Time) {
		t.Helper()
		for _, f := range bk.since(from, fromMAC(vmac)) {
			typ, recs, _ := mldReport(f)
			t.Errorf("the Backup %s sent a frame from the virtual MAC (MLD type %d, records %v): % x", name, typ, recs, f[:min(len(f), 90)])
		}
	}

	// Start-up, then an MLD query.
	masterFrames("a", fromA, llA, start)
	q := sendMLDQuery(t, c, "vrt2")
	answered(t, q, fromB, macB, fromA)
	silent("b", fromB, start)
	if got := fromA.since(q, func(f []byte) bool { _, _, ok := mldReport(f); return ok && fromMAC(vmac)(f) }); len(got) == 0 {
		t.Error("the Master's macvlan did not answer the query (its virtual addresses' groups): the test's query has no effect")
	}

	// a resigns: b takes over; a, Backup now, sends nothing from the virtual MAC, not even
	// as it releases the addresses, nor at the next query.
	ia, ib := na.eventCount(), nb.eventCount()
	na.r.Resign("test")
	e := na.waitEvent(t, ia, StateMaster, StateBackup, CauseResigned)
	eb := nb.waitEvent(t, ib, StateBackup, StateMaster, CausePriorityZero)
	masterFrames("b", fromB, llB, eb.At)
	q = sendMLDQuery(t, c, "vrt2")
	answered(t, q, fromA, macA, fromB)
	silent("a", fromA, q)
	for _, f := range fromA.since(e.At, isLeave) {
		if fromMAC(vmac)(f) {
			t.Errorf("a left its groups from the virtual MAC as it left Master: % x", f[:min(len(f), 90)])
		}
	}

	// And back: b resigns, a takes over.
	ia, ib = na.eventCount(), nb.eventCount()
	nb.r.Resign("test")
	nb.waitEvent(t, ib, StateMaster, StateBackup, CauseResigned)
	ea := na.waitEvent(t, ia, StateBackup, StateMaster, CausePriorityZero)
	masterFrames("a", fromA, llA, ea.At)
	q = sendMLDQuery(t, c, "vrt2")
	answered(t, q, fromB, macB, fromA)
	silent("b", fromB, q)
	for _, f := range fromB.since(start, isLeave) {
		if fromMAC(vmac)(f) {
			t.Errorf("b left its groups from the virtual MAC: % x", f[:min(len(f), 90)])
		}
	}
	if s := nb.r.Status(); s.State != StateBackup || s.MasterIP != llA {
		t.Errorf("b: %v following %v; want backup following %v", s.State, s.MasterIP, llA)
	}
}

// BenchmarkVMACGate measures what the gate adds to an IPv6 virtual-MAC takeover (open: one
// RTM_DELTFILTER and its ACK, before the addresses are added) and release (close: one
// RTM_NEWTFILTER).
func BenchmarkVMACGate(b *testing.B) {
	a, peer := newTestNS(b), newTestNS(b)
	connect(b, a, "vrt0", labA, peer, "vrt1", labB)
	needMacvlan(b, a, "vrt0")
	var v *vmacLink
	var err error
	a.do(b, func() { v, err = setupVMAC(a.h, a.link(b, "vrt0"), 51, true, nil, slog.New(slog.DiscardHandler)) })
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	if v.gate == nil {
		b.Skip("no gate on this kernel")
	}
	var open, cls time.Duration
	for b.Loop() {
		start := time.Now()
		if err := v.gate.open(); err != nil {
			b.Fatal(err)
		}
		open += time.Since(start)
		start = time.Now()
		if err := v.gate.close(); err != nil {
			b.Fatal(err)
		}
		cls += time.Since(start)
	}
	b.ReportMetric(float64(open.Nanoseconds())/1e3/float64(b.N), "open-µs/op")
	b.ReportMetric(float64(cls.Nanoseconds())/1e3/float64(b.N), "close-µs/op")
}
