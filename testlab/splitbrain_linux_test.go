package testlab

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
)

// hasAudio reports whether some message of box in the node's tree has exactly this audio,
// whatever its number (a failback merge renumbers).
func (p *PBX) hasAudio(box string, audio []byte) bool {
	dir := filepath.Join(p.Tree, box, "INBOX")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".wav") {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && bytes.Equal(b, audio) {
			return true
		}
	}
	return false
}

// TestSplitBrainHeals separates the two nodes of an appliance pair while both keep their
// links (the bridge forwards nothing between them, each still reaches the berofos): both
// become Master and run the PBX, as they must while they cannot hear each other, and
// voicemail is left on both sides. Healed, the lower-priority Master steps down within one
// advert interval, stops its PBX and releases the address; the winner announces the address
// again with fresh gratuitous ARPs (keepalived's known gap), the berofos lines end on the
// winner's side, and every message left during the split is on the winner (the failback
// merge renumbers the one left under a number the winner used too).
func TestSplitBrainHeals(t *testing.T) {
	t.Parallel()
	requireUnshare(t)
	bl := newBerofosLab(t, 60*time.Second)
	l, ctx, tl, fos, a, b := bl.Lab, bl.ctx, bl.tl, bl.fos, bl.a, bl.b
	msg1 := bytes.Repeat([]byte("RIFF before the split "), 2000)
	if err := a.WriteMessage("1000", 1, msg1); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { return b.HasMessage("1000", 1, msg1) }); err != nil {
		t.Fatalf("message 1 not replicated: %v", err)
	}

	// The split: node2 hears no advert and takes over; both hold the address and run the PBX.
	if err := l.Partition(true); err != nil {
		t.Fatal(err)
	}
	if err := b.Router.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { return a.Running() && b.Running() }); err != nil {
		t.Fatalf("both Masters should run the PBX while split: %v", err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { h, _ := l.Holders(tl.VIP); return len(h) == 2 }); err != nil {
		t.Fatalf("both Masters should hold the address while split: %v", err)
	}
	// node2 reaches the berofos too and takes the lines.
	if _, err := waitMode(ctx, fos, 0); err != nil {
		t.Fatalf("node2, Master in the split, did not take the lines: %v", err)
	}
	onA := bytes.Repeat([]byte("RIFF split, node1 "), 2000)
	onB := bytes.Repeat([]byte("RIFF split, node2 "), 2000)
	onB2 := bytes.Repeat([]byte("RIFF split, node2, new box "), 2000)
	for _, w := range []struct {
		p     *PBX
		box   string
		n     int
		audio []byte
	}{{a, "1000", 2, onA}, {b, "1000", 2, onB}, {b, "2000", 1, onB2}} {
		if err := w.p.WriteMessage(w.box, w.n, w.audio); err != nil {
			t.Fatal(err)
		}
	}

	// Healed.
	heal := time.Now()
	if err := l.Partition(false); err != nil {
		t.Fatal(err)
	}
	gone, err := tl.WaitVIP(ctx, b.Router.Node, false, heal)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("healed: node2 released the address %v after the heal", gone.At.Sub(heal).Round(time.Millisecond))
	if d := gone.At.Sub(heal); d > time.Second+200*time.Millisecond {
		t.Errorf("two Masters %v after the heal, want one within the advert interval (1s)", d)
	}
	if err := b.Router.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { return !b.Running() }); err != nil {
		t.Fatalf("the loser did not stop its PBX: %v", err)
	}
	assertSoleMaster(t, ctx, l, tl, a.Router, b.Router)
	if !a.Running() {
		t.Error("the winner does not run the PBX")
	}

	// The winner announces the address again: the segment's caches may point at node2.
	mac, err := a.Router.Node.MAC()
	if err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	g, err := tl.WaitGARP(gctx, gone.At)
	gcancel()
	if err != nil {
		t.Errorf("the winner sent no gratuitous ARP after the heal: %v", err)
	} else if !slices.Equal(g.SenderMAC, mac) {
		t.Errorf("gratuitous ARP after the heal from %v, want the winner's %v", g.SenderMAC, mac)
	} else {
		t.Logf("first gratuitous ARP from the winner %v after the heal", g.At.Sub(heal).Round(time.Millisecond))
	}

	// The lines end on the winner's side (its controller sees the drift and re-asserts).
	if _, err := waitMode(ctx, fos, 1); err != nil {
		t.Errorf("lines not back on the winner: mode %d: %v", fos.Sim.Mode(), err)
	}

	// No voicemail lost: the winner has its own, node2's renumbered, node2's new mailbox;
	// and replicates them back to node2.
	all := func(p *PBX) bool {
		return p.HasMessage("1000", 1, msg1) && p.HasMessage("1000", 2, onA) && p.hasAudio("1000", onB) && p.hasAudio("2000", onB2)
	}
	if err := poll.Context(ctx, 50*time.Millisecond, func() bool { return all(a) && all(b) }); err != nil {
		t.Errorf("messages left in the split not on both nodes after the heal (winner %t, loser %t): %v", all(a), all(b), err)
	}
	if !hasEvent(lastEvents(t, a.Router.Node), "merged") {
		t.Errorf("no merged event on the winner:\n%s", strings.Join(lastEvents(t, a.Router.Node), "\n"))
	}
	// After the loser stepped down nobody moved the lines to node2.
	for _, s := range fos.Sim.Sets() {
		if s.At.After(gone.At.Add(100*time.Millisecond)) && s.Value == "0" {
			t.Errorf("a set towards node2 after it stepped down: %+v", s)
		}
	}
}
