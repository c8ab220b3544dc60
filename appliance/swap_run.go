package appliance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redundantd/redundantd/vrrp"
)

// ErrSwapFailed wraps a swap that started and did not hand over; the node is Master as
// before (its services started again).
var ErrSwapFailed = errors.New("swap failed")

// Swap hands the Master role to the Backup (seed 004 section 8, "Swap Master Device"), on
// the Master, in this order (design.md, "A swap, as data"):
//
//  1. drain: when asked, wait until no call is in progress (drain_check) or the time is up;
//  2. stop the PBX services here, so nothing new is written after the final sync;
//  3. final sync: replicate what is left (refused unless forced when it fails);
//  4. resign: a priority-0 advert, the addresses released;
//  5. the Backup takes over on the peer link's word (also when Passive) and answers once it
//     holds the addresses and the lines.
//
// The answer carries the timeline in milliseconds. A refusal (ErrSwapRefused) changes
// nothing; a failure before the resignation restarts the services and leaves this node
// Master. The old Master continues as a Backup with the group's Backup mode.
func (a *Appliance) Swap(ctx context.Context, req SwapRequest) (SwapResult, error) {
	var drain time.Duration
	if req.Drain != "" {
		d, err := time.ParseDuration(req.Drain)
		if err != nil || d < 0 || d > time.Hour {
			return SwapResult{State: "refused"}, fmt.Errorf("%w: drain %q: want a duration up to 1h, e.g. \"5m\"", ErrSwapRefused, req.Drain)
		}
		drain = d
	}
	if err := a.beginSwap(req.Force); err != nil {
		a.record(Event{Priority: PriorityNotice, Application: AppRedundancy, Name: "swap refused", Description: err.Error()})
		return SwapResult{State: "refused", Error: err.Error()}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.swapMu.Lock()
	a.swapCancel = cancel
	a.swapMu.Unlock()
	start := a.now()
	tl := &timeline{start: start, now: a.now}
	res := SwapResult{State: "pending", Started: start, Force: req.Force}
	a.setLastSwap(res)
	a.record(Event{Priority: PriorityNotice, Application: AppRedundancy, Name: "swap started",
		Description: fmt.Sprintf("swap started (force %t, drain %s)", req.Force, orUnknown(req.Drain))})
	err := a.swapSteps(ctx, tl, req.Force, drain)
	res.Timeline, res.TotalMS = tl.steps, ms(a.now().Sub(start))
	if v := a.peerView(); err == nil {
		res.NewMaster, res.State = v.NodeID, "done"
		a.record(Event{Priority: PriorityNotice, Application: AppRedundancy, Name: "swap done",
			Description: fmt.Sprintf("swap done in %.1f ms: %s is Master", res.TotalMS, orUnknown(v.NodeID))})
	} else {
		res.State, res.Error = "failed", err.Error()
		if errors.Is(err, context.Canceled) {
			res.State = "cancelled"
		}
		a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "swap failed", Description: err.Error()})
	}
	a.endSwap(res)
	return res, err
}

func (a *Appliance) peerView() PeerView {
	if a.peer == nil {
		return PeerView{}
	}
	return a.peer.Status()
}

// beginSwap checks the preconditions and marks the swap pending.
func (a *Appliance) beginSwap(force bool) error {
	a.swapMu.Lock()
	defer a.swapMu.Unlock()
	v := a.peerView()
	in := swapInputs{Role: a.role(), Pending: a.swapping, PeerConnected: v.Connected, PeerRole: v.Role,
		PeerMode: a.mode().Mode, Force: force}
	if a.peer == nil {
		in.PeerConnected = false
	}
	if err := swapRefusal(in); err != nil {
		return err
	}
	a.swapping = true
	return nil
}

func (a *Appliance) endSwap(res SwapResult) {
	a.swapMu.Lock()
	a.swapping, a.swapCancel = false, nil
	a.swapMu.Unlock()
	a.setLastSwap(res)
}

func (a *Appliance) setLastSwap(res SwapResult) {
	a.swapMu.Lock()
	defer a.swapMu.Unlock()
	a.lastSwap = &res
}

// CancelSwap cancels a swap that has not resigned yet (draining or syncing); it reports
// whether one was pending.
func (a *Appliance) CancelSwap() bool {
	a.swapMu.Lock()
	defer a.swapMu.Unlock()
	if a.swapCancel == nil {
		return false
	}
	a.swapCancel()
	return true
}

// LastSwap returns the swap in progress or the last one; nil when none ran.
func (a *Appliance) LastSwap() *SwapResult {
	a.swapMu.Lock()
	defer a.swapMu.Unlock()
	if a.lastSwap == nil {
		return nil
	}
	c := *a.lastSwap
	return &c
}

func (a *Appliance) swapSteps(ctx context.Context, tl *timeline, force bool, drain time.Duration) error {
	if drain > 0 && a.services != nil {
		if err := tl.step("drain", func() (string, error) { return a.drain(ctx, drain) }); err != nil {
			return fmt.Errorf("%w: %w", ErrSwapFailed, err)
		}
	}
	if a.services != nil {
		_ = tl.step("stop services", func() (string, error) {
			a.services.Follow(vrrp.StateBackup)
			return "", waitUntil(ctx, 2*time.Millisecond, func() bool { return a.services.Applied(vrrp.StateBackup) })
		})
	}
	if a.syncPart() != nil {
		err := tl.step("final sync", func() (string, error) {
			st, err := a.syncNow(ctx)
			return fmt.Sprintf("%d files, %d bytes in %s", st.Files, st.BytesSent, st.Duration.Round(time.Millisecond)), err
		})
		if err != nil && !force {
			a.resumeServices()
			return fmt.Errorf("%w: final sync: %w (force hands over anyway)", ErrSwapFailed, err)
		}
	}
	if ctx.Err() != nil {
		a.resumeServices()
		return ctx.Err()
	}
	_ = tl.step("resign", func() (string, error) {
		a.router.Resign("swap")
		return "addresses released", waitUntil(context.Background(), time.Millisecond, func() bool {
			s := a.router.Status()
			return s.State != vrrp.StateMaster && len(s.VirtualIPs) == 0
		})
	})
	if a.peer == nil || !a.peer.Status().Connected {
		return nil // forced: the priority-0 advert hands over to the Active Backup
	}
	return tl.step("backup took over", func() (string, error) {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := a.peer.Request(rctx, PeerRequest{Type: PeerRequestTakeOver, Reason: "swap from " + a.cfg.Node.ID})
		if err != nil {
			// The Backup got the priority-0 advert too: an Active one takes over by itself.
			return "", fmt.Errorf("the Backup did not confirm the takeover: %w", err)
		}
		return "addresses and lines confirmed by the new Master", nil
	})
}

// resumeServices starts the services again after a swap that did not hand over.
func (a *Appliance) resumeServices() {
	if a.services != nil && a.role() == "master" {
		a.services.Follow(vrrp.StateMaster)
	}
}

// drain waits until no call is in progress or d has passed.
func (a *Appliance) drain(ctx context.Context, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		calls, err := a.services.Draining(ctx)
		switch {
		case errors.Is(err, ErrNoDrainCheck):
			return "no drain_check configured", nil
		case err == nil && calls == 0:
			return "no call in progress", nil
		case time.Now().After(deadline):
			return fmt.Sprintf("time up with %d calls in progress", calls), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
