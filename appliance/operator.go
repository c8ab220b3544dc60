package appliance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/redundantd/redundantd/vrrp"
)

// Version is the software version this node reports to its peer; the seed's device ID is
// built from it, and both nodes should run the same one.
const Version = "0.4.0"

// This file is the operator's workflow around the engine: the group's Backup mode, the peer
// link's status and requests, giving the Master role up when the PBX fails, and the record
// of the last role. The decisions are the pure functions of mode.go, swap.go and
// peer_core.go; here they are fed and carried out.

// mode returns the group's Backup mode as this node knows it.
func (a *Appliance) mode() modeRecord {
	a.stMu.Lock()
	defer a.stMu.Unlock()
	return a.state.Mode
}

// setMode records a new Backup mode (from the API or the peer), applies it to the engine and
// keeps it in state_dir. It reports whether anything changed.
func (a *Appliance) setMode(m modeRecord) bool {
	a.stMu.Lock()
	if a.state.Mode.Mode == m.Mode && !m.SetAt.After(a.state.Mode.SetAt) {
		a.stMu.Unlock()
		return false
	}
	old := a.state.Mode.Mode
	a.state.Mode = m
	st := a.state
	a.stMu.Unlock()
	if a.router != nil {
		a.startActive.Store(false)
		a.router.SetPassive(m.Mode == ModePassive)
	}
	a.saveState(st)
	a.poke() // the control loop watches a Passive node for a missing Master
	if old != m.Mode {
		a.record(Event{Priority: PriorityNotice, Application: AppRedundancy, Name: "mode changed",
			Description: fmt.Sprintf("Backup mode set to %s (by %s; was %s)", m.Mode, orUnknown(m.SetBy), old)})
	}
	if a.peer != nil {
		a.peer.Changed()
	}
	return true
}

// saveState keeps st in state_dir; a disk that refuses is an event, never fatal.
func (a *Appliance) saveState(st nodeState) {
	err := saveNodeState(a.cfg.Node.StateDir, st)
	a.stMu.Lock()
	first := err != nil && a.stateErr == ""
	if err != nil {
		a.stateErr = err.Error()
	} else {
		a.stateErr = ""
	}
	a.stMu.Unlock()
	if first {
		a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "state not saved",
			Description: fmt.Sprintf("backup mode and last role kept in memory only: %v", err)})
	}
}

// noteRole keeps the last role across restarts (see startPassive).
func (a *Appliance) noteRole(s vrrp.State) {
	if s != vrrp.StateMaster && s != vrrp.StateBackup {
		return
	}
	a.stMu.Lock()
	if a.state.LastRole == s.String() {
		a.stMu.Unlock()
		return
	}
	a.state.LastRole = s.String()
	st := a.state
	a.stMu.Unlock()
	a.saveState(st)
}

// role is this node's VRRP state name ("disabled" without redundancy).
func (a *Appliance) role() string {
	if a.router == nil {
		return "disabled"
	}
	return a.router.Status().State.String()
}

// virtualIPCount is how many virtual IPs the node holds as Master: [redundancy]'s and, with
// groups, every [[redundancy.group]]'s (the unit's status lists those of all its groups).
func (a *Appliance) virtualIPCount() int {
	n := len(a.cfg.Redundancy.VirtualIPs)
	for _, g := range a.cfg.Redundancy.Groups {
		n += len(g.VirtualIPs)
	}
	return n
}

// peerLocal is what this node tells its peer every interval.
func (a *Appliance) peerLocal() PeerStatus {
	m := a.mode()
	ps := PeerStatus{Role: a.role(), BackupMode: string(m.Mode), ModeSetAt: m.SetAt, ModeSetBy: m.SetBy,
		Unhealthy: a.health()}
	if a.router != nil {
		st := a.router.Status()
		ps.HoldsAddresses = st.State == vrrp.StateMaster && len(st.VirtualIPs) == a.virtualIPCount()
	}
	if a.services != nil {
		for _, s := range a.services.Status().([]ServiceStatus) {
			ps.Services = append(ps.Services, PeerServiceState{Name: s.Name, State: s.State.String()})
		}
	}
	if sp := a.syncPart(); sp != nil {
		st := sp.n.Status()
		if st.Runs > 0 {
			ps.LastSync = &PeerSyncResult{At: st.LastRun.Started.Add(st.LastRun.Duration), OK: st.LastError == "", Error: st.LastError}
		}
	}
	return ps
}

// poke wakes the control loop; it never blocks (the link's OnChange and the services'
// OnHealth call it from their goroutines).
func (a *Appliance) poke() {
	select {
	case a.pokes <- struct{}{}:
	default:
	}
}

// control runs the decisions that follow a change of the peer or of the services' health:
// adopt a newer Backup mode from the peer, give the Master role up when the PBX fails and
// a healthy Active Backup is there, and say when a Passive Backup hears no Master.
func (a *Appliance) control(ctx context.Context) {
	var alone aloneWatch
	var watch passiveTicker
	defer watch.stop()
	if a.router != nil {
		rc := a.cfg.Redundancy
		down := vrrp.MasterDownInterval(rc.AdvertInterval, rc.Priority)
		if rc.Version == 3 {
			down = vrrp.MasterDownIntervalV3(rc.AdvertInterval, rc.Priority)
		}
		alone.after = down + rc.AdvertInterval
		watch.every = rc.AdvertInterval
	}
	peerUp, peerRole := false, ""
	for {
		// Only a Passive Backup can be alone: the ticker runs while the group's mode is
		// Passive (setMode pokes this loop), so an Active node has no wake-up per advert
		// interval here.
		if a.router != nil && !watch.set(a.mode().Mode == ModePassive) {
			alone.step(false, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-watch.c():
			if alone.step(a.passiveAlone(), time.Now()) {
				a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "passive no master",
					Description: "this node is a Passive Backup and hears no Master: it will not take over on its own (swap, or set the Backup mode to active)"})
			}
			continue
		case <-a.pokes:
		}
		if a.peer != nil {
			v := a.peer.Status()
			if v.Connected && !peerUp {
				a.reannounce()
			}
			if v.Connected && v.Role == PeerRoleBackup && (!peerUp || peerRole != PeerRoleBackup) {
				a.syncToNewPeer(ctx)
			}
			peerUp, peerRole = v.Connected, v.Role
			if v.Connected && v.Role == "master" && a.startActive.Load() {
				a.endStartRule() // another Master is there: this node is a Backup of the group
			}
			if v.Connected {
				if m, changed := newerMode(a.mode(), modeRecord{BackupMode(v.BackupMode), v.ModeSetAt, v.ModeSetBy}); changed {
					a.setMode(m)
				}
			}
		}
		a.checkHealth()
	}
}

// reannounce makes a Master announce its addresses again when the peer link comes up: the
// peer may have been Master while the link was down (a split brain that healed), and the
// segment's ARP caches may still point at it. The engine also does it when it hears the
// other Master's advert, but after a heal the loser usually steps down on our advert first.
func (a *Appliance) reannounce() {
	r, ok := a.router.(interface{ Reannounce(reason string) })
	if !ok || a.router.Status().State != vrrp.StateMaster {
		return
	}
	r.Reannounce("the peer link is up: the peer may have held the addresses meanwhile")
}

// syncToNewPeer starts a replication run when the Master sees a new Backup: the peer link
// came up with the peer as Backup, or the connected peer became Backup. A Backup that just
// joined (a new or replaced box) or a split Master that stepped down after a heal gets
// everything now, not at the next interval: the run that found it absent or still Master
// failed, and the failback merge of what it wrote meanwhile waits for this run. The run
// reports itself (event run); it never delays the control loop.
func (a *Appliance) syncToNewPeer(ctx context.Context) {
	sp := a.syncPart()
	if sp == nil || a.router == nil || a.router.Status().State != vrrp.StateMaster {
		return
	}
	go a.syncNow(ctx) // shared with any "sync now" in flight
}

// passiveAlone reports whether this node is a Passive Backup with no Master in sight: none
// ever heard, or (with the peer link) the peer is not connected as Master.
func (a *Appliance) passiveAlone() bool {
	st := a.router.Status()
	if st.State != vrrp.StateBackup || !st.Passive {
		return false
	}
	if a.peer != nil {
		v := a.peer.Status()
		return !(v.Connected && v.Role == "master")
	}
	return !st.MasterIP.IsValid()
}

// passiveTicker is the control loop's ticker for the Passive-alone watch, running only while
// it is wanted.
type passiveTicker struct {
	every time.Duration
	t     *time.Ticker
}

// set starts (on) or stops the ticker and returns on.
func (p *passiveTicker) set(on bool) bool {
	switch {
	case on && p.t == nil:
		p.t = time.NewTicker(p.every)
	case !on:
		p.stop()
	}
	return on
}

func (p *passiveTicker) stop() {
	if p.t != nil {
		p.t.Stop()
		p.t = nil
	}
}

// c is the ticker's channel; nil (never ready) while it is stopped.
func (p *passiveTicker) c() <-chan time.Time {
	if p.t == nil {
		return nil
	}
	return p.t.C
}

// aloneWatch turns "a Passive Backup with no Master" into one event per episode, once the
// condition has held for after (a Master_Down_Interval and an advert: a peer link that
// reconnects or a Master that is starting raise nothing). Pure: the caller passes the time.
type aloneWatch struct {
	after    time.Duration
	since    time.Time
	reported bool
}

// step feeds the condition at now and reports whether the event is due.
func (w *aloneWatch) step(alone bool, now time.Time) bool {
	if !alone {
		w.since, w.reported = time.Time{}, false
		return false
	}
	if w.since.IsZero() {
		w.since = now
	}
	if w.reported || now.Sub(w.since) < w.after {
		return false
	}
	w.reported = true
	return true
}

// mayResign decides whether a Master whose services failed gives the role up: only to a
// peer that is connected, Backup, Active and healthy, so that a failing PBX is never
// replaced by nothing, by a Passive node or by a node whose PBX fails too.
func mayResign(unhealthy string, role string, peer PeerView) bool {
	return unhealthy != "" && role == "master" && peer.Connected && peer.Role == "backup" &&
		peer.BackupMode == string(ModeActive) && peer.Unhealthy == ""
}

func (a *Appliance) checkHealth() {
	if a.router == nil || a.peer == nil {
		return
	}
	why := a.health()
	if !mayResign(why, a.role(), a.peer.Status()) {
		return
	}
	a.record(Event{Priority: PriorityWarning, Application: AppService, Name: "resigned",
		Description: fmt.Sprintf("giving the Master role to the healthy Active Backup: %s", why)})
	a.router.Resign(why)
}

// onPeerRequest carries out what the peer asks.
func (a *Appliance) onPeerRequest(ctx context.Context, r PeerRequest) error {
	switch r.Type {
	case PeerRequestSetBackupMode:
		m, err := ParseBackupMode(r.Mode)
		if err != nil {
			return err
		}
		a.setMode(modeRecord{Mode: m, SetAt: a.now(), SetBy: "peer " + a.peer.Status().NodeID})
		return nil
	case PeerRequestTakeOver:
		return a.takeOver(ctx, r.Reason)
	}
	return fmt.Errorf("unknown request %q", r.Type)
}

// takeOver makes this Backup Master on the peer's word (a swap) and answers once it holds
// the virtual IPs and, when a berofos is configured, the lines are confirmed (or a short
// bound passed: a device that is down must not fail a swap the addresses already made).
func (a *Appliance) takeOver(ctx context.Context, reason string) error {
	if a.router == nil {
		return errors.New("redundancy is disabled on this node")
	}
	st := a.router.Status()
	if st.State != vrrp.StateBackup && st.State != vrrp.StateMaster {
		return fmt.Errorf("this node is %s (%s), it cannot take over", st.State, orUnknown(st.Fault))
	}
	a.router.TakeOver(reason)
	if err := waitUntil(ctx, 2*time.Millisecond, func() bool {
		s := a.router.Status()
		return s.State == vrrp.StateMaster && len(s.VirtualIPs) == len(a.cfg.Redundancy.VirtualIPs)
	}); err != nil {
		return fmt.Errorf("not Master with every virtual IP: %w", err)
	}
	if bp := a.berofosPart(); bp != nil {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_ = waitUntil(lctx, 2*time.Millisecond, bp.linesInPlace)
	}
	return nil
}

// waitUntil polls cond every step until it holds or ctx ends.
func waitUntil(ctx context.Context, step time.Duration, cond func() bool) error {
	t := time.NewTicker(step)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// runPeer serves the peer link until ctx ends. A port that cannot be opened is an event,
// not the end of the node: VRRP and the PBX run on without the link.
func (a *Appliance) runPeer(ctx context.Context) {
	ln := a.peerLn
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.Peer.Listen); err != nil {
			a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "peer link down",
				Description: fmt.Sprintf("peer link: listen on %s: %v (swap and peer status unavailable)", a.cfg.Peer.Listen, err)})
			return
		}
	}
	if err := a.peer.Run(ctx, ln); err != nil && ctx.Err() == nil {
		a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "peer link down",
			Description: fmt.Sprintf("peer link stopped: %v", err)})
	}
}

// peerDialTimeout bounds one attempt to dial the peer link.
const peerDialTimeout = 5 * time.Second

// newPeerLink builds the peer link from the configuration; the node with the lower address
// dials (PeerDials).
func (a *Appliance) newPeerLink() (*PeerLink, error) {
	srv, cli, err := PeerTLS(a.cfg)
	if err != nil {
		return nil, fmt.Errorf("peer link: %w", err)
	}
	pc := PeerConfig{
		NodeID:    a.cfg.Node.ID,
		Version:   Version,
		Settings:  PeerSettingsOf(a.cfg),
		ServerTLS: srv,
		ClientTLS: cli,
		Interval:  a.cfg.Peer.Interval,
		Local:     a.peerLocal,
		OnRequest: a.onPeerRequest,
		OnChange:  func(v PeerView) { a.onPeerChange(v); a.poke() },
		Record:    a.record,
		Logger:    a.log.With("part", "peer"),
		Now:       a.now,
	}
	// The tie-break is between the nodes' own addresses (redundancy.peer), whatever address
	// the link itself uses; without redundancy.peer, the host of peer.address.
	peerAddr := a.cfg.Redundancy.Peer
	if host, _, err := net.SplitHostPort(a.cfg.Peer.Address); err == nil && !peerAddr.IsValid() {
		peerAddr, _ = netip.ParseAddr(host)
	}
	if !peerAddr.IsValid() || PeerDials(a.cfg.Node.Address, peerAddr) {
		addr := a.cfg.Peer.Address
		pc.Dial = func(ctx context.Context) (net.Conn, error) {
			// Bounded: a SYN into a partition is otherwise retried by the kernel for about
			// two minutes, and a healed path (the second heartbeat's cable) would wait for
			// the next retransmission, up to half a minute, instead of the next attempt.
			d := net.Dialer{Timeout: peerDialTimeout}
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	return NewPeerLink(pc)
}
