package vrrp

import (
	"fmt"
	"time"
)

// Holding the Backup: a second heartbeat outside VRRP.
//
// RFC 3768 knows one sign of life, the Master's adverts. When the path that carries them
// fails while both nodes run (a switch or VLAN that stops passing multicast), each Backup's
// Master_Down_Timer fires and the group has two Masters. A caller with another sign of life
// (the appliance's peer link on another cable) can hold the Backup: a Master_Down_Timer
// that fires for want of adverts (CauseMasterDown) then reports Held instead of making this
// node Master. The engine knows nothing of that other heartbeat; the hold is one input.
//
// Only CauseMasterDown is held: a priority-0 advert (the Master resigned, section 6.4.2)
// and preemption of a lower-priority Master are decisions the Master's own adverts carry,
// and they go on as the RFC says.

// Held: Master_Down_Timer fired while the caller held this Backup (SetHold): no advert from
// the Master within Master_Down_Interval, and the node stays Backup. The timer is re-armed
// for another Master_Down_Interval; each further expiry while held returns another Held with
// the same Since. No state changes.
type Held struct {
	Reason string    // why the timer was set, as a Transition to Master would have said
	Since  time.Time // the first expiry of this episode (At == Since the first time)
	At     time.Time
}

func (Held) isAction() {}

// holdState is the Machine's part of holding: the input and the episode it caused.
type holdState struct {
	hold      bool      // SetHold(true): CauseMasterDown expiries report Held
	heldSince time.Time // the first held expiry since the last advert; zero when none
	heard     time.Time // the last valid advert accepted in Backup (any priority)
}

// SetHold holds (on) or releases a Backup's takeover on Master_Down_Timer (see Held). While
// held, a Master_Down_Timer that fires for want of adverts returns Held and re-arms; an
// advert from the Master ends the episode as usual (the timer restarts from it). Releasing
// the hold after such an expiry makes the node Master at once with CauseMasterDown: the
// adverts have been missing for longer than Master_Down_Interval, which is what the protocol
// asks of a Backup. Releasing it otherwise, or in any other state, only clears the input.
// A passive Backup has no Master_Down_Timer and is not affected.
func (m *Machine) SetHold(now time.Time, on bool) []Action {
	if on == m.hold {
		return nil
	}
	m.hold = on
	if on || m.heldSince.IsZero() {
		return nil
	}
	since := m.heldSince
	m.heldSince = time.Time{}
	if m.state != StateBackup || m.passive || m.downCause != CauseMasterDown {
		return nil
	}
	why := fmt.Sprintf("%s (held since %s while the caller saw the Master alive; no longer)",
		m.downReason, since.Format(time.RFC3339Nano))
	return m.becomeMaster(now, CauseMasterDown, why)
}

// holdExpiry is Tick's part: it reports whether the Backup's expired Master_Down_Timer is
// held, and then re-arms it and returns the Held action.
func (m *Machine) holdExpiry(now time.Time) (Held, bool) {
	if !m.hold || m.downCause != CauseMasterDown {
		return Held{}, false
	}
	if m.heldSince.IsZero() {
		m.heldSince = now
	}
	m.deadline = now.Add(m.downInterval())
	return Held{Reason: m.downReason, Since: m.heldSince, At: now}, true
}
