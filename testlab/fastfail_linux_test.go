package testlab

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
)

// fastPair starts an appliance pair at 1 s adverts (node1 Master at priority 150), the peer
// link on the bridge, or on a cable of its own when cable is set.
func fastPair(t *testing.T, cable bool) (*Lab, context.Context, *Timeline, [2]*PBX) {
	t.Helper()
	requireUnshare(t)
	l, ctx, tl := recordedLab(t, 60*time.Second)
	ps, err := NewPBXPair(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps { // the PBX's health is not what these tests are about
		p.CheckInterval = time.Minute
	}
	if cable {
		if err := CablePeers(l, ps); err != nil {
			t.Fatal(err)
		}
	}
	if err := StartPBXs(ctx, l, ps, [2]VRRPConfig{{Priority: 150}, {Priority: 100}}, [2]string{}); err != nil {
		t.Fatal(err)
	}
	return l, ctx, tl, ps
}

// becameMaster waits for node b's "became master" event after seq and returns its text.
func becameMaster(t *testing.T, ctx context.Context, b *PBX, after uint64) string {
	t.Helper()
	e, err := b.WaitEvent(ctx, "became master", after)
	if err != nil {
		t.Fatal(err)
	}
	return e.Description
}

// TestPeerLinkCrashTakeover: SIGKILL of the Master's daemon closes its peer link (the kernel
// closes the socket) and the Active Backup takes over at once, by the crash rule, not by
// Master_Down_Timer. A SIGTERM afterwards (the new Master stopping) goes the protocol's way:
// its bye keeps the crash rule out, its priority-0 advert hands over.
func TestPeerLinkCrashTakeover(t *testing.T) {
	t.Parallel()
	_, ctx, tl, ps := fastPair(t, false)
	a, b := ps[0], ps[1]
	seq, err := b.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := a.Router.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	vip, err := tl.WaitVIP(ctx, b.Router.Node, true, killed)
	if err != nil {
		t.Fatal(err)
	}
	desc := becameMaster(t, ctx, b, seq)
	if !strings.Contains(desc, "takeover: the peer link to Master node1 closed without a goodbye") {
		t.Fatalf("node2 became Master by %q, want the crash rule", desc)
	}
	if _, err := b.WaitEvent(ctx, "peer crashed", seq); err != nil {
		t.Error(err)
	}
	t.Logf("SIGKILL to the VIP on node2: %v (Master_Down_Interval %v)", vip.At.Sub(killed), MasterDownInterval(time.Second, 100))

	// node1 back as Backup (preempt off), then node2 stops on purpose: node1 takes over on the
	// priority-0 advert, and the crash rule stays out of it.
	if err := a.Router.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Router.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool {
		st, err := a.Status(ctx)
		return err == nil && st.Peer != nil && st.Peer.Connected && st.Peer.Role == "master"
	}); err != nil {
		t.Fatal(err)
	}
	seqA, err := a.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Router.Term(ctx); err != nil {
		t.Fatal(err)
	}
	desc = becameMaster(t, ctx, a, seqA)
	if !strings.Contains(desc, "resigned (priority 0 advert)") {
		t.Errorf("after node2's SIGTERM node1 became Master by %q, want the priority-0 advert", desc)
	}
	noCrashRule(t, ctx, a, seqA, "a SIGTERM")
}

// noCrashRule fails the test if p raised the crash rule's event after seq.
func noCrashRule(t *testing.T, ctx context.Context, p *PBX, seq uint64, what string) {
	t.Helper()
	evs, err := p.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Seq > seq && e.Name == "peer crashed" {
			t.Errorf("%s triggered the crash rule: %s", what, e.Description)
		}
	}
}

// TestHungMasterWaitsForTimers: a Master whose daemon hangs (SIGSTOP: the connection stays
// open, silent) is replaced by the protocol's Master_Down_Timer, not by the crash rule.
func TestHungMasterWaitsForTimers(t *testing.T) {
	t.Parallel()
	_, ctx, _, ps := fastPair(t, false)
	a, b := ps[0], ps[1]
	seq, err := b.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Router.Proc().Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Router.Proc().Signal(syscall.SIGCONT) })
	desc := becameMaster(t, ctx, b, seq)
	if !strings.Contains(desc, "no advert from master") || !strings.Contains(desc, "within Master_Down_Interval") {
		t.Fatalf("node2 replaced the hung Master by %q, want Master_Down_Timer", desc)
	}
	noCrashRule(t, ctx, b, seq, "a hung daemon")
}

// TestAdvertPathCutPeerLinkOnCable: the peer link runs on a cable of its own; the bridge
// stops passing anything between the nodes (each keeps its carrier). The Backup hears no
// advert but the link shows the Master alive holding its address: no takeover, the event
// instead, one holder. Then the Master's daemon dies and the Backup takes over at once.
func TestAdvertPathCutPeerLinkOnCable(t *testing.T) {
	t.Parallel()
	l, ctx, tl, ps := fastPair(t, true)
	a, b := ps[0], ps[1]
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool {
		st, err := b.Status(ctx)
		return err == nil && st.Peer != nil && st.Peer.HoldsAddresses
	}); err != nil {
		t.Fatalf("node2 never saw node1 holding its address: %v", err)
	}
	seq, err := b.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Partition(true); err != nil {
		t.Fatal(err)
	}
	e, err := b.WaitEvent(ctx, "adverts lost", seq)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.Description, "Master alive on the peer link") {
		t.Errorf("event %q", e.Description)
	}
	st, err := b.Router.State(ctx)
	if err != nil || st != "backup" {
		t.Fatalf("node2 is %q (%v) with the Master alive on the cable, want backup", st, err)
	}
	if h := tl.Holders(); len(h) != 1 || h[0] != a.Router.Node {
		t.Fatalf("holders %v, want node1 only", h)
	}
	killed := time.Now()
	if err := a.Router.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.WaitVIP(ctx, b.Router.Node, true, killed); err != nil {
		t.Fatal(err)
	}
	if desc := becameMaster(t, ctx, b, seq); !strings.Contains(desc, "closed without a goodbye") {
		t.Errorf("node2 took over by %q, want the crash rule", desc)
	}
}
