package appliance

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// runningPart is a part started by Run: its own context, so a reload can stop it alone.
type runningPart struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// partList returns the parts in the order they follow a role change.
func (a *Appliance) partList() []Part {
	a.partsMu.Lock()
	defer a.partsMu.Unlock()
	return slices.Clone(a.parts)
}

func (a *Appliance) syncPart() *syncPart {
	a.partsMu.Lock()
	defer a.partsMu.Unlock()
	return a.sync
}

func (a *Appliance) berofosPart() *berofosPart {
	a.partsMu.Lock()
	defer a.partsMu.Unlock()
	return a.berofos
}

// startPart runs p until ctx ends or a reload stops it; a part that fails is an event.
func (a *Appliance) startPart(ctx context.Context, p Part) {
	pctx, cancel := context.WithCancel(ctx)
	rp := runningPart{cancel: cancel, done: make(chan struct{})}
	a.partsMu.Lock()
	a.running[p] = rp
	a.partsMu.Unlock()
	go func() {
		defer close(rp.done)
		if err := p.Run(pctx); err != nil && pctx.Err() == nil {
			a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "part stopped",
				Description: fmt.Sprintf("%s stopped, starting it again in %s: %v", p.Name(), a.partRetry, err)})
			if _, ok := p.(*syncPart); ok {
				a.setSyncDown(err.Error())
				go a.retryPart(ctx, p)
			}
		}
	}()
}

func (a *Appliance) setSyncDown(why string) {
	a.partsMu.Lock()
	a.syncDown = why
	a.partsMu.Unlock()
}

// SyncDown says why the replication is enabled but not running; "" when it runs.
func (a *Appliance) SyncDown() string {
	a.partsMu.Lock()
	defer a.partsMu.Unlock()
	return a.syncDown
}

// retryPart builds the replication again every partRetry until it starts (old is the part
// that failed, nil when none could be built).
func (a *Appliance) retryPart(ctx context.Context, old Part) {
	t := time.NewTicker(a.partRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.reloadMu.Lock()
		cfg := a.live
		a.reloadMu.Unlock()
		p, err := a.newSyncPart(cfg)
		if err != nil {
			a.setSyncDown(err.Error())
			continue
		}
		a.replacePart(ctx, old, p, func() { a.sync, a.syncDown = p, "" })
		a.record(Event{Priority: PriorityNotice, Application: AppSync, Name: "started", Description: "replication started"})
		return
	}
}

// stopPart stops a running part and waits for it.
func (a *Appliance) stopPart(p Part) {
	a.partsMu.Lock()
	rp, ok := a.running[p]
	delete(a.running, p)
	a.partsMu.Unlock()
	if ok {
		rp.cancel()
		<-rp.done
	}
}

// waitParts waits for every running part (Run's context is done).
func (a *Appliance) waitParts() {
	a.partsMu.Lock()
	var all []runningPart
	for _, rp := range a.running {
		all = append(all, rp)
	}
	a.partsMu.Unlock()
	for _, rp := range all {
		<-rp.done
	}
}

// replacePart swaps old for new (either may be nil) in the follow order, stops old, starts
// new on ctx and gives it the current role. The other parts run on undisturbed.
func (a *Appliance) replacePart(ctx context.Context, old, new Part, set func()) {
	a.partsMu.Lock()
	i := slices.IndexFunc(a.parts, func(p Part) bool { return old != nil && p == old })
	switch {
	case i >= 0 && new != nil:
		a.parts[i] = new
	case i >= 0:
		a.parts = slices.Delete(a.parts, i, i+1)
	case new != nil:
		a.parts = append(a.parts, new)
	}
	set()
	a.partsMu.Unlock()
	if old != nil {
		a.stopPart(old)
	}
	if new != nil {
		a.startPart(ctx, new)
		if a.router != nil {
			new.Follow(a.router.Status().State)
		}
	}
}
