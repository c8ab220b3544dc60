package appliance

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redundantd/redundantd/vrrp"
)

// ReloadResult says what a reload did.
type ReloadResult struct {
	Applied []string `json:"applied"` // keys applied at once
	Restart []string `json:"restart"` // changed keys kept as they were until a restart
}

// Reload applies a newly loaded configuration (SIGHUP): the keys ReloadPlan calls live are
// applied at once: the engine's priority, preempt and gratuitous ARP settings, those of
// [redundancy] to its own group and those of each [[redundancy.group]] to that group
// (reloadGroups); the berofos part is rebuilt (its bnfos.conf read again, also when no key
// changed) and so is the sync part when [sync] changed; the others keep their running
// values and are reported as needing a restart. The events say which. It must be called
// after Run has started.
func (a *Appliance) Reload(cfg *Config) (ReloadResult, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	apply, restart := ReloadPlan(a.live, cfg)
	res := ReloadResult{Applied: apply, Restart: restart}
	var errs []error
	if a.router != nil && slices.ContainsFunc(apply, isTopRedundancyKey) {
		rc := cfg.Redundancy
		if err := a.router.Reload(vrrp.RuntimeConfig{Priority: rc.Priority, Preempt: rc.Preempt,
			GARPCount: rc.GARPCount, GARPInterval: rc.GARPInterval, GARPRefresh: rc.GARPRefresh}); err != nil {
			errs = append(errs, err)
		}
	}
	next := *a.live
	next.Redundancy.Priority, next.Redundancy.Preempt = cfg.Redundancy.Priority, cfg.Redundancy.Preempt
	next.Redundancy.GARPCount, next.Redundancy.GARPInterval = cfg.Redundancy.GARPCount, cfg.Redundancy.GARPInterval
	next.Redundancy.GARPRefresh = cfg.Redundancy.GARPRefresh
	next.Redundancy.AllowLinkLocal = cfg.Redundancy.AllowLinkLocal
	next.Redundancy.Groups, errs = a.reloadGroups(apply, cfg, errs)
	if cfg.Berofos.Enabled || a.berofosPart() != nil {
		if err := a.reloadBerofos(cfg.Berofos); err != nil {
			errs = append(errs, err)
		} else {
			next.Berofos = cfg.Berofos
		}
	}
	if anyIn(apply, "sync.") {
		trial := next
		trial.Sync = cfg.Sync
		if err := a.reloadSync(&trial); err != nil {
			errs = append(errs, err)
		} else {
			next.Sync = cfg.Sync
		}
	}
	a.live = &next
	if len(apply) > 0 {
		a.record(Event{Priority: PriorityNotice, Application: AppRedundancy, Name: "config reloaded",
			Description: "configuration reloaded; applied: " + strings.Join(apply, ", ")})
	}
	if len(restart) > 0 {
		a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "needs a restart",
			Description: "changed in the file but kept as running until a restart: " + strings.Join(restart, ", ")})
	}
	if err := errors.Join(errs...); err != nil {
		a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "reload failed",
			Description: fmt.Sprintf("reload: kept the running settings where this failed: %v", err)})
		return res, err
	}
	return res, nil
}

// isTopRedundancyKey tells the keys of [redundancy]'s own group from those of the
// [[redundancy.group]] groups ("redundancy.group[...]...").
func isTopRedundancyKey(k string) bool {
	return strings.HasPrefix(k, "redundancy.") && !strings.HasPrefix(k, "redundancy.group[")
}

// reloadGroups applies the live keys of the running groups (groupsReloadPlan) to their
// members of the unit, through vrrp.Unit.ReloadMember: member i+1 is the running
// configuration's group i (dialVRRP). A group takes the new file's priority, preempt and
// gratuitous-ARP keys when one of them changed for it, or when [redundancy]'s garp_refresh
// (which every group follows) did. It returns the running groups with the values applied;
// a group whose reload failed keeps its old ones, and the error is added to errs.
func (a *Appliance) reloadGroups(apply []string, cfg *Config, errs []error) ([]GroupConfig, []error) {
	running := slices.Clone(a.live.Redundancy.Groups)
	u, ok := a.router.(interface {
		ReloadMember(i int, rc vrrp.RuntimeConfig) error
	})
	if !ok || len(running) == 0 {
		return running, errs
	}
	refresh := slices.Contains(apply, "redundancy.garp_refresh")
	newBy := make(map[string]GroupConfig, len(cfg.Redundancy.Groups))
	for _, g := range cfg.Redundancy.Groups {
		newBy[groupName(g)] = g
	}
	for i, g := range running {
		n, kept := newBy[groupName(g)]
		if !kept || !(refresh || anyIn(apply, groupKeyOf(g, "")+".")) {
			continue
		}
		rc := vrrp.RuntimeConfig{Priority: n.Priority, Preempt: n.Preempt, GARPCount: n.GARPCount,
			GARPInterval: n.GARPInterval, GARPRefresh: cfg.Redundancy.GARPRefresh}
		if err := u.ReloadMember(i+1, rc); err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", groupName(g), err))
			continue
		}
		running[i].Priority, running[i].Preempt = n.Priority, n.Preempt
		running[i].GARPCount, running[i].GARPInterval = n.GARPCount, n.GARPInterval
	}
	return running, errs
}

// ReloadFailed records a reload whose file was refused (the running configuration stays).
func (a *Appliance) ReloadFailed(err error) {
	a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "reload refused",
		Description: fmt.Sprintf("configuration not reloaded, the running one stays: %v", err)})
}

func anyIn(keys []string, prefix string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

func (a *Appliance) reloadBerofos(bc BerofosConfig) error {
	var old Part
	if bp := a.berofosPart(); bp != nil {
		old = bp
	}
	err := a.rebuild(old, bc.Enabled, func() (Part, error) {
		return newBerofosPart(bc, a.log.With("part", "berofos"), a.record)
	}, func(p Part) { a.berofos, _ = p.(*berofosPart) })
	if err != nil {
		return fmt.Errorf("berofos: %w", err)
	}
	return nil
}

func (a *Appliance) reloadSync(cfg *Config) error {
	var old Part
	if sp := a.syncPart(); sp != nil {
		old = sp
	}
	err := a.rebuild(old, cfg.Sync.Enabled, func() (Part, error) {
		return a.newSyncPart(cfg)
	}, func(p Part) { a.sync, _ = p.(*syncPart) })
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// rebuild replaces a part of one kind: old (nil when there is none) gives way to the part
// build makes, or to none when the kind is not enabled; set records the new one (nil when
// none) under the parts' lock. A build that fails leaves old running.
func (a *Appliance) rebuild(old Part, enabled bool, build func() (Part, error), set func(Part)) error {
	var np Part
	if enabled {
		p, err := build()
		if err != nil {
			return err
		}
		np = p
	}
	a.replacePart(a.runCtx, old, np, func() { set(np) })
	return nil
}
