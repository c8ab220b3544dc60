package appliance

import (
	"fmt"
	"time"

	"github.com/redundantd/redundantd/vrrp"
)

// Faster than the protocol timers, without split brain (docs/peer.md, "Second heartbeat").
//
// The peer link and the VRRP engine of a node run in one process. Two rules use that:
//
//   - Crash: when the link to the Master ends the way a dead daemon ends it (its kernel
//     closes the TCP connection, FIN or RST, with no "bye" before), and no advert has
//     arrived since the moment it closed, an Active Backup takes over at once instead of
//     waiting for Master_Down_Interval. A hung daemon (the connection stays open, silent), a
//     lost host (no FIN, no RST) and a daemon that stops on purpose (it says bye; SIGTERM's
//     priority-0 advert does the rest) are left to the protocol's timers.
//   - Second heartbeat: while the link is up and the peer's status says it is Master and
//     holds the virtual IPs, the Backup's engine is held (vrrp.Router.SetHold): when the
//     adverts stop, Master_Down_Timer raises an event instead of a second Master. When the
//     link ends, or the peer no longer says so, the hold is released and the protocol
//     rules again (a Backup whose timer fired while held becomes Master at once).
//
// The decisions are pure functions of what the link and the engine report; onPeerChange
// feeds and carries them out.

// failoverInput is what the decisions look at: the peer as the link sees it after a change,
// and this node's engine.
type failoverInput struct {
	Peer       PeerView
	State      vrrp.State
	Passive    bool      // the engine is passive: a Passive Backup never takes over
	LastAdvert time.Time // the last valid advert the engine received
}

// crashTakeover decides whether this node takes over now because the Master's daemon died:
// the link is down, its connection ended as a dead process ends it (PeerEndClosed), the
// peer last said it was Master, this node is an Active Backup, and no advert has arrived
// since the link closed (one that did proves the Master, or a restarted daemon that took
// the role again, alive). It returns the reason for the takeover, or why it waits.
func crashTakeover(in failoverInput) (bool, string) {
	p := in.Peer
	switch {
	case p.Connected:
		return false, "the peer link is up"
	case p.Ended != PeerEndClosed:
		return false, fmt.Sprintf("the peer link ended %s, not closed by the peer's kernel: the protocol's timers decide", orUnknown(p.Ended))
	case p.Role != PeerRoleMaster:
		return false, fmt.Sprintf("the peer was %s, not Master", orUnknown(p.Role))
	case in.State != vrrp.StateBackup:
		return false, fmt.Sprintf("this node is %s, not Backup", in.State)
	case in.Passive:
		return false, "this node is a Passive Backup"
	case !in.LastAdvert.Before(p.Since):
		return false, fmt.Sprintf("an advert arrived at %s, after the peer link closed at %s",
			in.LastAdvert.Format(time.RFC3339Nano), p.Since.Format(time.RFC3339Nano))
	}
	return true, fmt.Sprintf("the peer link to Master %s closed without a goodbye (its daemon died) and no advert followed", p.NodeID)
}

// advertHold decides whether the engine is held: the link is up and the peer says it is
// Master holding the virtual IPs. The link itself declares the peer down after peerMissed
// intervals without a status, so a held Backup of a lost host is released by then.
func advertHold(in failoverInput) bool {
	p := in.Peer
	return p.Connected && p.Role == PeerRoleMaster && p.HoldsAddresses
}

// failoverWatch applies the two rules to the sequence of peer views: the crash rule once
// per loss of the link (a later view of the same loss, a dial error say, decides nothing
// again), the hold whenever it changes.
type failoverWatch struct {
	loss time.Time // PeerView.Since of the last loss decided on
	hold bool      // the hold as last set on the engine
}

// failoverStep is what the watch asks of the engine after one view.
type failoverStep struct {
	TakeOver   bool
	Why        string // the takeover's reason, or why there is none (only for a new loss)
	Hold       bool
	HoldChange bool // Hold differs from what the engine has
}

// step takes the next view (with the engine's state at that moment).
func (w *failoverWatch) step(in failoverInput) failoverStep {
	var out failoverStep
	if !in.Peer.Connected && !in.Peer.Since.IsZero() && !in.Peer.Since.Equal(w.loss) {
		w.loss = in.Peer.Since
		out.TakeOver, out.Why = crashTakeover(in)
	}
	out.Hold = advertHold(in)
	out.HoldChange = out.Hold != w.hold
	w.hold = out.Hold
	return out
}

// holder is the engine's hold control (*vrrp.Router has it; a Router without it never holds).
type holder interface{ SetHold(on bool) }

var _ holder = (*vrrp.Router)(nil)

// onPeerChange runs the failover rules on a new view of the peer; it is called from the link's
// goroutine (OnChange) and does not block: the engine applies TakeOver and SetHold in order
// on its own goroutine.
func (a *Appliance) onPeerChange(v PeerView) {
	if a.router == nil {
		return
	}
	st := a.router.Status()
	in := failoverInput{Peer: v, State: st.State, Passive: st.Passive, LastAdvert: st.LastAdvert}
	a.failMu.Lock()
	out := a.failover.step(in)
	a.failMu.Unlock()
	if out.TakeOver {
		a.router.TakeOver(out.Why) // first: the event log can wait, the phones cannot
		a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "peer crashed",
			Description: "taking over at once: " + out.Why})
	} else if out.Why != "" {
		a.log.Info("peer link lost; no fast takeover", "why", out.Why)
	}
	if h, ok := a.router.(holder); ok && out.HoldChange {
		a.log.Info("hold on Master_Down_Timer", "hold", out.Hold)
		h.SetHold(out.Hold)
	}
}

// onHeld runs on the engine's goroutine when Master_Down_Timer fires while held: the adverts
// are lost but the peer link shows the Master alive, so this node stays Backup. One event per
// episode (the engine repeats Held every Master_Down_Interval with the same Since).
func (a *Appliance) onHeld(h vrrp.Held) { a.recordHeld("", h) }

// recordHeld records onHeld's event; with groups each group holds on its own and names
// itself in prefix ("group eth1/18: ").
func (a *Appliance) recordHeld(prefix string, h vrrp.Held) {
	if !h.At.Equal(h.Since) {
		return
	}
	a.record(Event{Time: h.At, Priority: PriorityWarning, Application: AppRedundancy, Name: "adverts lost",
		Description: fmt.Sprintf("%sadverts lost, Master alive on the peer link: staying Backup (%s)", prefix, h.Reason)})
}
