package appliance

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/redundantd/redundantd/vrrp"
)

// dialVRRP opens the VRRP engine: one Router for [redundancy] alone, or a vrrp.Unit of it and
// the [[redundancy.group]] groups, which the rest of the appliance sees as one Router with
// one role (the unit's, see vrrp.Unit.Status): the services, the berofos and the
// replication follow the unit, never a single group.
func (a *Appliance) dialVRRP(dial func(vrrp.Config) (Router, error)) (Router, error) {
	if len(a.cfg.Redundancy.Groups) == 0 {
		return dial(a.vrrpConfig())
	}
	cfgs := []vrrp.Config{a.vrrpConfig()}
	for _, g := range a.cfg.Redundancy.Groups {
		cfgs = append(cfgs, a.groupConfig(g))
	}
	for i := range cfgs {
		prefix := fmt.Sprintf("group %s/%d: ", cfgs[i].Interface, cfgs[i].VRID) // the Unit's member name
		cfgs[i].OnHeld = func(h vrrp.Held) { a.recordHeld(prefix, h) }
	}
	u, err := vrrp.NewUnit(vrrp.UnitConfig{
		Logger: a.log.With("part", "vrrp"),
		OnEvent: func(e vrrp.Event) {
			e.Err = nil // the member's own event reported it (onGroupEvent)
			a.onVRRPEvent(e)
		},
		OnMemberEvent: a.onGroupEvent,
	}, cfgs, func(c vrrp.Config) (vrrp.Member, error) { return dial(c) })
	if err != nil {
		return nil, err
	}
	return unitRouter{u}, nil
}

// unitRouter is the appliance's Router over a vrrp.Unit.
type unitRouter struct{ *vrrp.Unit }

// Reload applies [redundancy]'s runtime settings to its own group (member 0): the other
// groups take theirs through ReloadMember (Appliance.reloadGroups), each from its own
// [[redundancy.group]].
func (u unitRouter) Reload(rc vrrp.RuntimeConfig) error { return u.ReloadMember(0, rc) }

var _ Router = unitRouter{}

// groupConfig translates a [[redundancy.group]] into the engine's settings; what is not a
// group's own is [redundancy]'s (vrrpConfig).
func (a *Appliance) groupConfig(g GroupConfig) vrrp.Config {
	c := a.vrrpConfig()
	c.Interface, c.Version, c.VRID, c.Priority, c.AdvertInterval, c.Preempt = g.Interface, g.Version, g.GroupID, g.Priority, g.AdvertInterval, g.Preempt
	c.Primary, c.VirtualIPs, c.Unicast, c.VirtualMAC = g.Address, g.VirtualIPs, g.Unicast, g.VirtualMAC
	c.GARPCount, c.GARPInterval = g.GARPCount, g.GARPInterval
	c.Peers = nil
	if g.Unicast {
		c.Peers = []netip.Addr{g.Peer}
	}
	if c.IPv6() {
		c.Primary = netip.Addr{} // the interface's link-local address, as in vrrpConfig
	}
	return c
}

// onGroupEvent records one group's transition in the event log (the unit's role change, if
// it makes one, follows as a "became ..." event through onVRRPEvent) and its address error.
func (a *Appliance) onGroupEvent(e vrrp.MemberEvent) {
	ev := transitionEvent(e.Event)
	if ev.Priority == PriorityNotice {
		ev.Priority = PriorityInfo // the unit's role change carries the notice
	}
	ev.Name = "group " + e.To.String()
	ev.Description = fmt.Sprintf("group %s: %s", e.Name, ev.Description)
	a.recordOnly(ev)
	if e.Err != nil {
		a.record(Event{Time: e.At, Priority: PriorityWarning, Application: AppRedundancy, Name: "addresses",
			Description: fmt.Sprintf("group %s: virtual IPs not in the wanted state after %s -> %s (retrying every advert interval): %v", e.Name, e.From, e.To, e.Err)})
	}
}

// GroupStatus is one VRRP group of a node that runs several, in the API's status: the
// group's settings (those of [redundancy] for the first, of its [[redundancy.group]] for
// the others) and its own state, which may differ from the unit's for a moment while the
// unit moves (vrrp.Unit.Status).
type GroupStatus struct {
	Name        string   `json:"name"` // "<interface>/<group_id>"
	Interface   string   `json:"interface"`
	GroupID     uint8    `json:"group_id"` // the VRID
	Version     uint8    `json:"version"`  // 2 (RFC 3768) or 3 (RFC 9568)
	State       string   `json:"state"`
	Priority    uint8    `json:"priority"`
	MasterIP    string   `json:"master_ip,omitempty"` // the group's Master as last heard
	VirtualIPs  []string `json:"virtual_ips"`         // configured
	Holding     []string `json:"holding"`             // held now (confirmed by the engine)
	Since       string   `json:"since,omitempty"`     // RFC 3339 time of the group's last transition
	Transitions uint64   `json:"transitions"`
	Fault       string   `json:"fault,omitempty"`
	// Dropped are the group's rejected adverts by reason, Adverts its counts.
	Dropped map[string]uint64 `json:"dropped"`
	Adverts AdvertCounts      `json:"adverts"`
}

// groupStatus lists the groups of a unit; nil for a node with one group.
func (a *Appliance) groupStatus() []GroupStatus {
	u, ok := a.router.(unitRouter)
	if !ok {
		return nil
	}
	rc := a.cfg.Redundancy
	cfgs := append([]GroupConfig{{Interface: a.cfg.Node.Interface, Version: rc.Version, GroupID: rc.GroupID, VirtualIPs: rc.VirtualIPs}},
		rc.Groups...)
	var out []GroupStatus
	for i, m := range u.Members() {
		g := GroupStatus{Name: m.Name, State: m.State.String(), Priority: m.Priority, Transitions: m.Transitions,
			Fault: m.Fault, Holding: []string{}, VirtualIPs: []string{}, Dropped: m.Dropped, Adverts: advertCounts(m.Adverts)}
		if g.Dropped == nil {
			g.Dropped = map[string]uint64{}
		}
		if i < len(cfgs) { // the members are dialled from these, in this order (dialVRRP)
			c := cfgs[i]
			g.Interface, g.GroupID, g.Version = c.Interface, c.GroupID, c.Version
			for _, p := range c.VirtualIPs {
				g.VirtualIPs = append(g.VirtualIPs, p.String())
			}
		}
		if m.MasterIP.IsValid() {
			g.MasterIP = m.MasterIP.String()
		}
		if !m.Since.IsZero() {
			g.Since = m.Since.UTC().Format(time.RFC3339Nano)
		}
		for _, p := range m.VirtualIPs {
			g.Holding = append(g.Holding, p.String())
		}
		out = append(out, g)
	}
	return out
}
