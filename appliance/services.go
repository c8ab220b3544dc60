package appliance

import (
	"errors"
	"fmt"
	"time"

	"github.com/redundantd/redundantd/vrrp"
)

// This file is the pure core of the PBX services: the sequencer that decides which start or
// stop command runs next, and the health tracker that turns check results into a verdict.
// Neither reads a clock, runs a command or starts a goroutine; ServiceManager
// (services_manager.go) drives them.

// ServiceState is what the node knows of one service.
type ServiceState uint8

const (
	// ServiceUnknown: no command has run yet (before the first role is applied). A service
	// enabled at boot may be running; the first Backup role stops it.
	ServiceUnknown ServiceState = iota
	ServiceStopped
	ServiceStarting
	ServiceRunning
	ServiceStopping
	// ServiceFailed: the last start or stop failed or timed out; the service may be in any
	// state. The next Master role starts it again, the next Backup role stops it again.
	ServiceFailed
)

func (s ServiceState) String() string {
	switch s {
	case ServiceUnknown:
		return "unknown"
	case ServiceStopped:
		return "stopped"
	case ServiceStarting:
		return "starting"
	case ServiceRunning:
		return "running"
	case ServiceStopping:
		return "stopping"
	case ServiceFailed:
		return "failed"
	}
	return fmt.Sprintf("ServiceState(%d)", uint8(s))
}

// MarshalText makes the state a word in JSON.
func (s ServiceState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ErrServiceState is wrapped by UnmarshalText for a word that names no state.
var ErrServiceState = errors.New("unknown service state")

// UnmarshalText reads the word MarshalText writes, so that a client (redundantctl, the lab)
// can decode the status answer into the API's own types.
func (s *ServiceState) UnmarshalText(b []byte) error {
	for st := ServiceUnknown; st <= ServiceFailed; st++ {
		if st.String() == string(b) {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrServiceState, b)
}

// stepOp is what a step does to its service.
type stepOp uint8

const (
	opStart stepOp = iota + 1
	opStop
)

func (o stepOp) String() string {
	if o == opStart {
		return "start"
	}
	return "stop"
}

// step is one command of a transition: start or stop the service with index Service.
type step struct {
	Service int
	Op      stepOp
}

// seqNext tells the driver what to do after a call to the sequencer: run Step (when Run),
// and/or announce that the newest role is fully applied (when Applied: every step of it has
// been acknowledged; Failed lists the services whose command failed, in the order run).
// At most one of Run and Applied is set.
type seqNext struct {
	Run     bool
	Step    step
	Applied bool
	Role    vrrp.State
	Failed  []int
}

// sequencer applies roles to the services one step at a time. Becoming Master starts each
// service in configuration order, becoming anything else (Backup, Initialize) stops them in
// reverse order. A step is never started before the previous one is acknowledged (Done).
// A newer role supersedes the one being applied: its steps not yet started are dropped, the
// step in flight finishes (or times out) and is acknowledged, then the newest role is
// applied from the services' states as they are. Nothing is queued, so there is nothing
// stale to drop: the next step is always computed from the newest role and the states.
//
// A failed start does not stop the sequence: the following services are still started (they
// may not depend on the failed one; ordering dependencies belong in the service manager,
// e.g. systemd's Requires=), and the failure is reported so the health verdict can give the
// Master role up. A failed stop does not stop it either: every other service is still
// stopped, so that at most one node runs the PBX.
type sequencer struct {
	states  []ServiceState
	role    vrrp.State
	hasRole bool
	// tried marks the services the current round has run a command for, so that a failed
	// one is not retried in a loop; a new role starts a new round.
	tried    []bool
	failed   []int
	inFlight bool
	cur      step
	applied  bool // the current round has been reported as Applied
}

func newSequencer(n int) *sequencer {
	return &sequencer{states: make([]ServiceState, n), tried: make([]bool, n)}
}

// Follow sets the newest role. A role equal to the one being (or already) applied changes
// nothing; another one starts a new round. When no step is in flight the first step of the
// new round is returned (or Applied, when there is nothing to do).
func (s *sequencer) Follow(role vrrp.State) seqNext {
	if s.hasRole && role == s.role {
		return seqNext{}
	}
	s.role, s.hasRole = role, true
	clear(s.tried)
	s.failed = nil
	s.applied = false
	if s.inFlight {
		return seqNext{}
	}
	return s.next()
}

// Done acknowledges the step in flight with its outcome and returns what comes next. A Done
// without a step in flight, or for another step, is ignored.
func (s *sequencer) Done(st step, ok bool) seqNext {
	if !s.inFlight || st != s.cur {
		return seqNext{}
	}
	s.inFlight = false
	switch {
	case st.Op == opStart && ok:
		s.states[st.Service] = ServiceRunning
	case st.Op == opStop && ok:
		s.states[st.Service] = ServiceStopped
	default:
		s.states[st.Service] = ServiceFailed
	}
	// The step counts for the current round only if it is what the round wants; a step of a
	// superseded round leaves the service for the new round to handle.
	if s.wantsStart() == (st.Op == opStart) {
		s.tried[st.Service] = true
		if !ok {
			s.failed = append(s.failed, st.Service)
		}
	}
	return s.next()
}

// next picks the next step of the round: the first service (in order when starting, in
// reverse when stopping) not yet tried and not already in the wanted state.
func (s *sequencer) next() seqNext {
	if !s.hasRole || s.inFlight || s.applied {
		return seqNext{}
	}
	n := len(s.states)
	for k := range n {
		i, want, op := k, ServiceRunning, opStart
		if !s.wantsStart() {
			i, want, op = n-1-k, ServiceStopped, opStop
		}
		if s.tried[i] || s.states[i] == want {
			continue
		}
		s.cur = step{Service: i, Op: op}
		s.inFlight = true
		if op == opStart {
			s.states[i] = ServiceStarting
		} else {
			s.states[i] = ServiceStopping
		}
		return seqNext{Run: true, Step: s.cur}
	}
	s.applied = true
	return seqNext{Applied: true, Role: s.role, Failed: s.failed}
}

func (s *sequencer) wantsStart() bool { return s.role == vrrp.StateMaster }

// State is the service's current state.
func (s *sequencer) State(i int) ServiceState { return s.states[i] }

// Settled reports whether the newest role is fully applied (or no role was ever given).
func (s *sequencer) Settled() bool { return !s.inFlight && (s.applied || !s.hasRole) }

// healthChange is a change of a service's verdict.
type healthChange uint8

const (
	healthSame healthChange = iota
	healthBecameUnhealthy
	healthBecameHealthy
)

// healthTracker turns one service's check results into a verdict, like keepalived's
// track_script: after Fall consecutive failures the service is unhealthy; it is healthy
// again only after Rise consecutive successes. Checks run only while the tracker is active
// (this node is Master and the service was started); the verdict is kept while inactive, so
// a node that gave up the Master role because its PBX failed does not count as healthy
// again until it has run the PBX and seen Rise good checks. A failed start makes the service
// unhealthy at once. A service without a check is judged by its start alone.
//
// Results are matched to the check they answer with a token, so the late answer of a check
// that was running when the node left Master (and is still running when it comes back)
// never counts.
type healthTracker struct {
	hasCheck bool
	interval time.Duration
	fall     int
	rise     int

	active   bool
	next     time.Time // when the next check is due, while active and none in flight
	inFlight bool
	token    uint64 // of the check in flight

	fails, oks int // consecutive
	unhealthy  bool
	reason     string
}

func newHealthTracker(hasCheck bool, interval time.Duration, fall, rise int) *healthTracker {
	return &healthTracker{hasCheck: hasCheck, interval: interval, fall: fall, rise: rise}
}

// Activate starts checking: the first check is due one interval from now, giving the
// service that time to come up. Activating an active tracker changes nothing.
func (h *healthTracker) Activate(now time.Time) {
	if h.active || !h.hasCheck {
		return
	}
	h.active = true
	h.inFlight = false
	h.token++
	h.next = now.Add(h.interval)
	h.fails, h.oks = 0, 0
}

// Deactivate stops checking (the node leaves Master or the service is being stopped); a
// check in flight will be ignored. The verdict is kept.
func (h *healthTracker) Deactivate() {
	if !h.active {
		return
	}
	h.active = false
	h.inFlight = false
	h.token++
	h.fails, h.oks = 0, 0
}

// Due reports whether a check must start now; if so it is in flight from now on and token
// identifies its result.
func (h *healthTracker) Due(now time.Time) (token uint64, due bool) {
	if !h.active || h.inFlight || now.Before(h.next) {
		return 0, false
	}
	h.inFlight = true
	h.token++
	return h.token, true
}

// Deadline is when Due must next be asked; the zero time when no check is to be scheduled.
func (h *healthTracker) Deadline() time.Time {
	if !h.active || h.inFlight {
		return time.Time{}
	}
	return h.next
}

// Result records the outcome of the check identified by token, schedules the next one an
// interval from now and says whether the verdict changed. Results of checks that are not
// the one in flight are ignored.
func (h *healthTracker) Result(now time.Time, token uint64, ok bool, name string) healthChange {
	if !h.active || !h.inFlight || token != h.token {
		return healthSame
	}
	h.inFlight = false
	h.next = now.Add(h.interval)
	if ok {
		h.fails = 0
		h.oks++
		if h.unhealthy && h.oks >= h.rise {
			h.unhealthy, h.reason = false, ""
			return healthBecameHealthy
		}
		return healthSame
	}
	h.oks = 0
	h.fails++
	if !h.unhealthy && h.fails >= h.fall {
		h.unhealthy = true
		h.reason = fmt.Sprintf("service %s failed", name)
		return healthBecameUnhealthy
	}
	return healthSame
}

// Started records the outcome of a start command. A failed start makes the service
// unhealthy at once; a good start makes a service without a check healthy (it has no other
// evidence), while one with a check must still pass Rise checks.
func (h *healthTracker) Started(ok bool, name string) healthChange {
	switch {
	case !ok && !h.unhealthy:
		h.unhealthy = true
		h.reason = fmt.Sprintf("service %s failed to start", name)
		return healthBecameUnhealthy
	case !ok:
		h.reason = fmt.Sprintf("service %s failed to start", name)
	case !h.hasCheck && h.unhealthy:
		h.unhealthy, h.reason = false, ""
		return healthBecameHealthy
	}
	return healthSame
}

// Healthy is the verdict, with the reason when unhealthy.
func (h *healthTracker) Healthy() (bool, string) { return !h.unhealthy, h.reason }

// Failures is the number of consecutive failed checks.
func (h *healthTracker) Failures() int { return h.fails }

// verdict is the node's verdict over its services: healthy when every service is, else the
// reason of the first unhealthy one in configuration order.
func verdict(trackers []*healthTracker) (bool, string) {
	for _, h := range trackers {
		if ok, why := h.Healthy(); !ok {
			return false, why
		}
	}
	return true, ""
}
