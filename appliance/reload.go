package appliance

import (
	"fmt"
	"reflect"
	"strings"
)

// liveKeys are the settings a running node can take from a reloaded file (SIGHUP) without
// a restart: a whole section when the key has no dot. Everything else decides the node's
// identity on the network (the VRID, the addresses, the interface, the advert timing its
// peers have learned, the API socket) and is applied by a restart only.
var liveKeys = map[string]bool{
	"redundancy.priority":         true, // the Router's SetPriority; a Master announces it at once
	"redundancy.preempt":          true,
	"redundancy.garp_count":       true, // used at the next transition to Master
	"redundancy.garp_interval":    true,
	"redundancy.garp_refresh":     true, // a Master's next refresh round follows the new value
	"redundancy.allow_link_local": true, // only widens what the file may say; nothing to apply
	"berofos":                     true, // the berofos part is rebuilt with the new settings
	"sync":                        true, // the sync part is rebuilt with the new settings
}

// restartKeys are exceptions inside a live section: the sync trees and port are part of the
// settings the peer compares (the peer link's fingerprint) and of a socket already open.
// The services and the notify command also need a restart: rebuilding the service manager
// would stop and start the PBX on a running Master.
var restartKeys = map[string]bool{
	"sync.paths":            true,
	"sync.listen":           true,
	"sync.peer_fingerprint": true, // the peer link pins it too
	"redundancy.notify":     true,
	"service":               true,
}

// ReloadPlan compares the running configuration with a newly loaded one (both validated by
// LoadConfig) and returns the dotted keys that differ, in file order: apply are those a
// running node can take at once, restart those that need a restart of the daemon and are to
// be kept as they are until then. Both are empty when nothing changed. It is pure: the
// caller (the SIGHUP handler) applies, reports and keeps the old values.
//
// The groups ([[redundancy.group]]) are compared one by one (groupsReloadPlan), so that a
// group's priority is as live as [redundancy]'s.
//
// The keys are the TOML keys: each Config field is named by the toml tag of the rawConfig
// field of the same name, so a section or key added to both is compared without a change
// here, and needs a restart unless liveKeys lists it.
func ReloadPlan(old, new *Config) (apply []string, restart []string) {
	add := func(key string) {
		if !restartKeys[key] && !restartKeys[sectionOf(key)] && (liveKeys[key] || liveKeys[sectionOf(key)]) {
			apply = append(apply, key)
		} else {
			restart = append(restart, key)
		}
	}
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(new).Elem()
	rawT := reflect.TypeOf(rawConfig{})
	for i := range ov.NumField() {
		f := ov.Type().Field(i)
		section, rawSection := tomlName(rawT, f.Name)
		a, b := ov.Field(i), nv.Field(i)
		if f.Type.Kind() != reflect.Struct {
			if !sameValue(a, b) {
				add(section)
			}
			continue
		}
		for j := range a.NumField() {
			if !f.Type.Field(j).IsExported() {
				continue // not a setting
			}
			if f.Name == "Redundancy" && f.Type.Field(j).Name == "Groups" {
				ga, gr := groupsReloadPlan(old.Redundancy.Groups, new.Redundancy.Groups)
				apply, restart = append(apply, ga...), append(restart, gr...)
				continue
			}
			if !sameValue(a.Field(j), b.Field(j)) {
				key, _ := tomlName(rawSection, f.Type.Field(j).Name)
				add(section + "." + key)
			}
		}
	}
	return apply, restart
}

// groupLiveKeys are the keys of a [[redundancy.group]] a running node takes at a SIGHUP:
// the same as [redundancy]'s own (liveKeys), applied to that group's Router through
// vrrp.Unit.ReloadMember. garp_refresh is not a group key: every group takes
// [redundancy]'s.
var groupLiveKeys = map[string]bool{
	"priority":      true,
	"preempt":       true,
	"garp_count":    true,
	"garp_interval": true,
}

// groupName names a group as the engine (vrrp.Unit) and the reload's keys do:
// "<interface>/<group_id>".
func groupName(g GroupConfig) string { return fmt.Sprintf("%s/%d", g.Interface, g.GroupID) }

// groupKeyOf is the reload's key of a group's setting, "redundancy.group[eth1/52].priority",
// or of the whole group when key is "" (a group added or removed).
func groupKeyOf(g GroupConfig, key string) string {
	k := "redundancy.group[" + groupName(g) + "]"
	if key != "" {
		k += "." + key
	}
	return k
}

// groupsReloadPlan is ReloadPlan for the [[redundancy.group]] tables. A group is the same
// group in both lists when its name (GroupName: interface and group_id) is, wherever it is
// in the list: a group whose interface or group_id changed is one group removed and another
// added. A group added or removed needs a restart (the unit's members are dialled at the
// start) and is named as a whole; a kept group's changed keys are named one by one,
// applied at once when groupLiveKeys lists them. The values compared are the group's
// resolved ones, so a change of [redundancy] that a group inherits is named under the
// group too. Keys come in the new file's order, then the removed groups in the old one's.
// It is pure.
func groupsReloadPlan(old, new []GroupConfig) (apply, restart []string) {
	byName := func(gs []GroupConfig) map[string]GroupConfig {
		m := make(map[string]GroupConfig, len(gs))
		for _, g := range gs {
			m[groupName(g)] = g
		}
		return m
	}
	oldBy, newBy := byName(old), byName(new)
	rawT := reflect.TypeOf(rawGroup{})
	for _, g := range new {
		o, ok := oldBy[groupName(g)]
		if !ok {
			restart = append(restart, groupKeyOf(g, ""))
			continue
		}
		ov, nv := reflect.ValueOf(o), reflect.ValueOf(g)
		for i := range ov.NumField() {
			if sameValue(ov.Field(i), nv.Field(i)) {
				continue
			}
			key, _ := tomlName(rawT, ov.Type().Field(i).Name)
			if groupLiveKeys[key] {
				apply = append(apply, groupKeyOf(g, key))
			} else {
				restart = append(restart, groupKeyOf(g, key))
			}
		}
	}
	for _, g := range old {
		if _, ok := newBy[groupName(g)]; !ok {
			restart = append(restart, groupKeyOf(g, ""))
		}
	}
	return apply, restart
}

func sectionOf(key string) string {
	s, _, _ := strings.Cut(key, ".")
	return s
}

// tomlName is the toml tag of the field called name in the raw struct t, and that field's
// type (for its own fields); the lowercased name when raw has no such field.
func tomlName(t reflect.Type, name string) (string, reflect.Type) {
	if t != nil {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() == reflect.Struct {
			if f, ok := t.FieldByName(name); ok {
				if tag, _, _ := strings.Cut(f.Tag.Get("toml"), ","); tag != "" {
					return tag, f.Type
				}
			}
		}
	}
	return strings.ToLower(name), nil
}

// sameValue is reflect.DeepEqual except that a nil and an empty list are the same setting
// (`devices = []` and no devices key).
func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}
