package appliance

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redundantd/redundantd/vrrp"
)

// ReloadResult says what a reload did.
type ReloadResult struct {
	Applied []string `json:"applied"` // keys applied at once
	Restart []string `json:"restart"` // changed keys kept as they were until a restart
}

// Reload applies a newly loaded configuration (SIGHUP): the keys ReloadPlan calls live are
// applied at once: the engine's priority, preempt and gratuitous ARP settings; the berofos
// part is rebuilt (its bnfos.conf read again, also when no key changed) and so is the sync
// part when [sync] changed; the others keep their running values and are reported as
// needing a restart. The events say which. It must be called after Run has started.
func (a *Appliance) Reload(cfg *Config) (ReloadResult, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	apply, restart := ReloadPlan(a.live, cfg)
	res := ReloadResult{Applied: apply, Restart: restart}
	var errs []error
	if a.router != nil && anyIn(apply, "redundancy.") {
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
