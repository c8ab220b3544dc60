package appliance

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// MaxGroups is the most [[redundancy.group]] tables: with [redundancy] itself, one group per
// VRID on one interface (RFC 3768 section 5.3.3: VRIDs 1..255).
const MaxGroups = 254

// GroupConfig is one more VRRP group of this node ([[redundancy.group]]), moving with
// [redundancy]'s group as one unit (docs/configuration.md, "Several groups"). Unset keys take
// [redundancy]'s values, except group_id and virtual_ips (always the group's own) and peer
// (inherited only on node.interface: on another interface the peer has another address).
type GroupConfig struct {
	Interface string
	// Address is this node's own IPv4 address on Interface, the advert source. node.address
	// when Interface is node.interface; otherwise zero unless set, and the engine takes the
	// interface's first IPv4 address.
	Address netip.Addr
	// Version is the group's VRRP version, 2 or 3 ([redundancy]'s when unset): its advert
	// interval and its virtual IPs are checked by that version's rules, as [redundancy]'s are.
	Version        uint8
	GroupID        uint8
	Priority       uint8
	AdvertInterval time.Duration
	Preempt        bool
	VirtualIPs     []netip.Prefix
	Unicast        bool
	Peer           netip.Addr
	VirtualMAC     bool
	GARPCount      int
	GARPInterval   time.Duration
}

// rawGroup mirrors one [[redundancy.group]] table.
type rawGroup struct {
	Interface      *string  `toml:"interface"`
	Address        *string  `toml:"address"`
	Version        *int64   `toml:"version"`
	GroupID        *int64   `toml:"group_id"`
	Priority       *int64   `toml:"priority"`
	AdvertInterval *string  `toml:"advert_interval"`
	Preempt        *bool    `toml:"preempt"`
	VirtualIPs     []string `toml:"virtual_ips"`
	Unicast        *bool    `toml:"unicast"`
	Peer           *string  `toml:"peer"`
	VirtualMAC     *bool    `toml:"virtual_mac"`
	GARPCount      *int64   `toml:"garp_count"`
	GARPInterval   *string  `toml:"garp_interval"`
}

// validateGroups checks the [[redundancy.group]] tables against each other and against
// [redundancy] (already checked as rc): each group's keys as [redundancy]'s own are checked,
// then the pairs (interface, group_id) must be unique, a virtual IP may belong to one group
// only, and virtual-MAC groups need distinct group_ids (the macvlan is named vrrp.<group_id>).
func validateGroups(p *problems, list []rawGroup, top *rawRedundancy, node NodeConfig, rc RedundancyConfig) []GroupConfig {
	if len(list) == 0 || !p.listLen("redundancy.group", len(list), MaxGroups, "one group per VRID on an interface") {
		return nil
	}
	all := []GroupConfig{{Interface: node.Interface, GroupID: rc.GroupID, VirtualIPs: rc.VirtualIPs, VirtualMAC: rc.VirtualMAC}}
	var out []GroupConfig
	for i := range list {
		g, ok := validateGroup(p, i, &list[i], top, node)
		if !ok {
			continue
		}
		out = append(out, g)
		all = append(all, g)
	}
	checkGroupsApart(p, all)
	return out
}

// groupKey names key of the i-th group.
func groupKey(i int, key string) string { return fmt.Sprintf("redundancy.group[%d].%s", i, key) }

// validateGroup checks one group with validateRedundancy, given the group's keys merged
// over [redundancy]'s, and reports the problems under the group's keys; a problem [redundancy]
// itself has (an inherited bad value) is reported there only. The merge includes version, so
// a group's advert_interval is checked by its own version's rule, as [redundancy]'s is
// (validateAdvertInterval: whole seconds for 2, RFC 3768 section 5.3.7; centiseconds from
// 10ms to 40.95s for 3, RFC 9568 section 5.2.7), and so are its IPv6 virtual IPs.
func validateGroup(p *problems, i int, g *rawGroup, top *rawRedundancy, node NodeConfig) (GroupConfig, bool) {
	gc := GroupConfig{Interface: node.Interface}
	if g.Interface != nil {
		gc.Interface = *g.Interface
		if !validInterfaceName(gc.Interface) {
			p.add(groupKey(i, "interface"), "%.40q is not an interface name (1 to 15 printable characters, no space, '/' or ':')", gc.Interface)
			return gc, false
		}
	}
	gnode := NodeConfig{ID: node.ID, Interface: gc.Interface, StateDir: node.StateDir}
	if gc.Interface == node.Interface {
		gnode.Address = node.Address
	}
	if g.Address != nil {
		a, err := netip.ParseAddr(*g.Address)
		if err != nil || !a.Is4() {
			p.add(groupKey(i, "address"), "%.60q is not an IPv4 address", *g.Address)
			return gc, false
		}
		gnode.Address = a
	}
	enabled := true
	merged := rawRedundancy{
		Enabled:        &enabled,
		Version:        or(g.Version, top.Version),
		GroupID:        g.GroupID,
		Priority:       or(g.Priority, top.Priority),
		AdvertInterval: or(g.AdvertInterval, top.AdvertInterval),
		Preempt:        or(g.Preempt, top.Preempt),
		VirtualIPs:     g.VirtualIPs,
		AllowLinkLocal: top.AllowLinkLocal,
		Peer:           g.Peer,
		Unicast:        or(g.Unicast, top.Unicast),
		VirtualMAC:     or(g.VirtualMAC, top.VirtualMAC),
		GARPCount:      or(g.GARPCount, top.GARPCount),
		GARPInterval:   or(g.GARPInterval, top.GARPInterval),
	}
	if g.Peer == nil && gc.Interface == node.Interface {
		merged.Peer = top.Peer
	}
	var gp problems
	r := validateRedundancy(&gp, &merged, gnode)
	n := len(*p)
	for _, err := range gp {
		var ce *ConfigError
		if !errors.As(err, &ce) || reported(*p, ce) {
			continue
		}
		key, problem := ce.Key, ce.Problem
		if g.Address != nil {
			key, problem = strings.ReplaceAll(key, "node.address", groupKey(i, "address")), strings.ReplaceAll(problem, "node.address", groupKey(i, "address"))
		}
		key = strings.Replace(key, "redundancy.", fmt.Sprintf("redundancy.group[%d].", i), 1)
		for _, k := range []string{"virtual_ips", "peer", "group_id", "version"} {
			problem = strings.ReplaceAll(problem, "redundancy."+k, groupKey(i, k))
		}
		*p = append(*p, &ConfigError{Key: key, Problem: problem})
	}
	gc.Address = gnode.Address
	gc.Version, gc.GroupID, gc.Priority, gc.AdvertInterval, gc.Preempt = r.Version, r.GroupID, r.Priority, r.AdvertInterval, r.Preempt
	gc.VirtualIPs, gc.Unicast, gc.Peer, gc.VirtualMAC = r.VirtualIPs, r.Unicast, r.Peer, r.VirtualMAC
	gc.GARPCount, gc.GARPInterval = r.GARPCount, r.GARPInterval
	return gc, len(*p) == n
}

// reported says whether p already holds the problem ce (from [redundancy]'s own check).
func reported(p problems, ce *ConfigError) bool {
	for _, err := range p {
		var o *ConfigError
		if errors.As(err, &o) && o.Key == ce.Key && o.Problem == ce.Problem {
			return true
		}
	}
	return false
}

// or returns v, or def when v is unset.
func or[T any](v, def *T) *T {
	if v != nil {
		return v
	}
	return def
}

// checkGroupsApart applies the rules between groups; all[0] is [redundancy]'s.
func checkGroupsApart(p *problems, all []GroupConfig) {
	name := func(i int) string {
		if i == 0 {
			return "redundancy"
		}
		return fmt.Sprintf("redundancy.group[%d]", i-1)
	}
	type ifVRID struct {
		ifname string
		vrid   uint8
	}
	pairs := map[ifVRID]int{}
	vmac := map[uint8]int{}
	vips := map[netip.Addr]int{}
	for i, g := range all {
		if j, dup := pairs[ifVRID{g.Interface, g.GroupID}]; dup {
			p.add(name(i)+".group_id", "%d on %s is also %s's: a VRID is one virtual router per interface", g.GroupID, g.Interface, name(j))
		} else {
			pairs[ifVRID{g.Interface, g.GroupID}] = i
		}
		if g.VirtualMAC {
			if j, dup := vmac[g.GroupID]; dup {
				p.add(name(i)+".group_id", "%d: with virtual_mac every group needs its own group_id (the link is named vrrp.%d, as %s's)", g.GroupID, g.GroupID, name(j))
			} else {
				vmac[g.GroupID] = i
			}
		}
		for k, v := range g.VirtualIPs {
			if j, dup := vips[v.Addr()]; dup {
				p.add(fmt.Sprintf("%s.virtual_ips[%d]", name(i), k), "%s is also a virtual IP of %s: an address belongs to one group", v.Addr(), name(j))
			} else {
				vips[v.Addr()] = i
			}
		}
	}
}
