package appliance

import (
	"fmt"
	"net/netip"

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

// Reload applies [redundancy]'s runtime settings to its own group: the other groups keep
// theirs, which change with a restart (ReloadPlan names redundancy.group).
func (u unitRouter) Reload(rc vrrp.RuntimeConfig) error { return u.ReloadMember(0, rc) }

var _ Router = unitRouter{}

// groupConfig translates a [[redundancy.group]] into the engine's settings; what is not a
// group's own is [redundancy]'s (vrrpConfig).
func (a *Appliance) groupConfig(g GroupConfig) vrrp.Config {
	c := a.vrrpConfig()
	c.Interface, c.VRID, c.Priority, c.AdvertInterval, c.Preempt = g.Interface, g.GroupID, g.Priority, g.AdvertInterval, g.Preempt
	c.Primary, c.VirtualIPs, c.Unicast, c.VirtualMAC = g.Address, g.VirtualIPs, g.Unicast, g.VirtualMAC
	c.GARPCount, c.GARPInterval = g.GARPCount, g.GARPInterval
	c.Peers = nil
	if g.Unicast {
		c.Peers = []netip.Addr{g.Peer}
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
