package testlab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redundantd/redundantd/appliance"
)

// kamailioServiceTOML is the [[service]] entry that runs f's Kamailio under redundantd.
func kamailioServiceTOML(f KamailioFiles) string {
	q := func(args []string) string {
		s := make([]string, len(args))
		for i, a := range args {
			s[i] = fmt.Sprintf("%q", a)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	return fmt.Sprintf(`
[[service]]
name = "kamailio"
start = %s
stop = %s
check = %s
timeout = "15s"
check_interval = "1s"
fall = 3
rise = 1
`, q(f.ServiceStart()), q(f.ServiceStop()), q(f.ServiceCheck()))
}

// kamailioWatch samples every 5 ms which nodes run Kamailio and when the virtual IP and a
// Kamailio first appear on a node after mark.
type kamailioWatch struct {
	l    *Lab
	vip  netip.Addr
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	samples int
	both    int
	first   map[string]time.Time // "vip@node2", "kamailio@node2": first seen after mark
	mark    time.Time
}

func watchKamailio(t *testing.T, l *Lab, vip netip.Addr) *kamailioWatch {
	w := &kamailioWatch{l: l, vip: vip, stop: make(chan struct{}), done: make(chan struct{}), first: map[string]time.Time{}}
	// Stopped before the lab closes even when the test fails early.
	t.Cleanup(w.halt)
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			now := time.Now()
			running := 0
			seen := map[string]bool{}
			for _, n := range l.Nodes() {
				if pids, err := n.KamailioPids(); err == nil && len(pids) > 0 {
					running++
					seen["kamailio@"+n.Name] = true
				}
				if ok, err := n.HasAddr(vip); err == nil && ok {
					seen["vip@"+n.Name] = true
				}
			}
			w.mu.Lock()
			w.samples++
			if running > 1 {
				w.both++
			}
			for k := range seen {
				if _, ok := w.first[k]; !ok && !w.mark.IsZero() {
					w.first[k] = now
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// reset starts a new measurement: first appearances are counted from now.
func (w *kamailioWatch) reset(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mark = now
	w.first = map[string]time.Time{}
}

// since is how long after the mark k was first seen ("-" when not yet).
func (w *kamailioWatch) since(k string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.first[k]
	if !ok {
		return "-"
	}
	return at.Sub(w.mark).Round(time.Millisecond).String()
}

func (w *kamailioWatch) halt() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

func (w *kamailioWatch) end(t *testing.T) {
	t.Helper()
	w.halt()
	if w.both > 0 {
		t.Errorf("kamailio ran on both nodes in %d of %d samples", w.both, w.samples)
	}
	t.Logf("%d samples (5 ms): kamailio on one node at most in each", w.samples)
}

// TestKamailioUnderRedundantd runs Kamailio as a redundantd [[service]] on an appliance pair
// (each daemon sees its own replicated tree at the same path): the Master starts it, the
// registrations of two baresip phones (3600 s expiry) reach the Backup through the sync,
// and after a swap and then a power loss of the new Master (link cut, every process of the
// node killed) phone A's call to phone B is answered through the virtual IP without either
// phone registering again. Kamailio never runs on two nodes at once. Times are logged.
func TestKamailioUnderRedundantd(t *testing.T) {
	requirePBX(t)
	requireUnshare(t)
	l, ctx, _ := recordedLab(t, 90*time.Second)
	vip := l.DefaultVIP()
	sipVIP := netip.AddrPortFrom(vip.Addr(), 5060)
	phones, err := l.AddHost("phones")
	if err != nil {
		t.Fatal(err)
	}
	// Each daemon (and Kamailio, its child) sees its own tree at l.PBXTree(); the live
	// database and the runtime files stay under the node's own directory.
	var files [2]KamailioFiles
	var extra [2]string
	for i := range 2 {
		n := l.Node(i + 1)
		files[i], err = n.WriteKamailio(KamailioConfig{VIP: vip.Addr(), Tree: filepath.Join(l.PBXTree(), "kamailio")})
		if err != nil {
			t.Fatal(err)
		}
		extra[i] = kamailioServiceTOML(files[i])
	}
	// Kamailio daemonizes out of the lab's process groups: kill what is left by pid, before
	// the lab removes the namespaces (cleanups run last-registered first).
	t.Cleanup(func() {
		for _, n := range l.Nodes() {
			pids, _ := n.KamailioPids()
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	w := watchKamailio(t, l, vip.Addr())
	ps, err := StartPBXPair(ctx, l, [2]VRRPConfig{{Priority: 150}, {Priority: 100}}, extra)
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0], ps[1]
	if !waitUp(ctx, l.Node(1)) {
		t.Fatal("kamailio did not come up on the Master")
	}
	snapOn := func(p *PBX) string { return filepath.Join(p.Tree, "kamailio", "usrloc.db") }

	alice, err := phones.StartPhone(ctx, PhoneConfig{User: "alice", Registrar: sipVIP})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := phones.StartPhone(ctx, PhoneConfig{User: "bob", Registrar: sipVIP})
	if err != nil {
		t.Fatal(err)
	}
	registered := time.Now()
	if _, err := alice.Call(ctx, "bob"); err != nil {
		t.Fatalf("on node1: %v", err)
	}
	onBackup := waitUsers(ctx, t, snapOn(b), []string{"alice", "bob"})
	t.Logf("both registrations in the Backup's tree %v after the second REGISTER was answered (snapshot + sync with watch)",
		onBackup.Sub(registered).Round(time.Millisecond))

	// Planned: swap to node 2.
	start := time.Now()
	w.reset(start)
	var res appliance.SwapResult
	if err := a.API(ctx, "POST", "/api/v1/swap", struct{}{}, &res); err != nil || res.State != "done" {
		t.Fatalf("swap: %+v, %v", res, err)
	}
	swapped := time.Since(start)
	t.Logf("swap timeline: %+v", res.Timeline)
	optAt, err := SIPPing(ctx, phones, sipVIP)
	if err != nil {
		t.Fatal(err)
	}
	callAt, err := alice.Call(ctx, "bob")
	if err != nil {
		t.Fatalf("after the swap: %v", err)
	}
	t.Logf("swap: answered in %v; VIP on node2 +%s, kamailio on node2 +%s, OPTIONS to the VIP answered +%v, alice->bob answered +%v",
		swapped.Round(time.Millisecond), w.since("vip@node2"), w.since("kamailio@node2"),
		optAt.Sub(start).Round(time.Millisecond), callAt.Sub(start).Round(time.Millisecond))
	if err := waitCond(ctx, 20*time.Millisecond, func() bool {
		p1, _ := l.Node(1).KamailioPids()
		return len(p1) == 0
	}); err != nil {
		t.Fatalf("kamailio still runs on the old Master: %v", err)
	}
	if a, b := alice.Registers(), bob.Registers(); a != 1 || b != 1 {
		t.Fatalf("REGISTERs after the swap: alice %d, bob %d; want 1 each", a, b)
	}

	// Unplanned: node 2 loses power: its link is cut and every process of it is killed.
	lost := time.Now()
	w.reset(lost)
	if err := l.Node(2).CutLink(); err != nil {
		t.Fatal(err)
	}
	pids, _ := l.Node(2).KamailioPids()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := b.Router.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	optAt, err = SIPPing(ctx, phones, sipVIP)
	if err != nil {
		t.Fatal(err)
	}
	callAt, err = alice.Call(ctx, "bob")
	if err != nil {
		t.Fatalf("after the loss of node2: %v", err)
	}
	t.Logf("loss of node2: VIP on node1 +%s, kamailio on node1 +%s, OPTIONS to the VIP answered +%v, alice->bob answered +%v",
		w.since("vip@node1"), w.since("kamailio@node1"),
		optAt.Sub(lost).Round(time.Millisecond), callAt.Sub(lost).Round(time.Millisecond))
	if a, b := alice.Registers(), bob.Registers(); a != 1 || b != 1 {
		t.Fatalf("REGISTERs after the loss: alice %d, bob %d; want 1 each", a, b)
	}
	w.end(t)
}

// waitUp waits until Kamailio answers OPTIONS on the node's 127.0.0.1:5060.
func waitUp(ctx context.Context, n *Node) bool {
	for ctx.Err() == nil {
		if n.KamailioUp(ctx, 5060, 200*time.Millisecond) {
			return true
		}
	}
	return false
}
