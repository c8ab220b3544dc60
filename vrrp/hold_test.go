package vrrp

import (
	"strings"
	"testing"
	"time"
)

// holdStep is one input to a Machine, the actions it must return and the state and deadline
// it must leave.
type holdStep struct {
	name     string
	do       func(t *testing.T, m *Machine, at time.Time) []Action
	at       time.Duration // after t0
	want     []Action
	state    State
	deadline time.Duration // after t0; -1: zero (no timer)
	held     bool          // Status().Held afterwards
}

func hold(on bool) func(*testing.T, *Machine, time.Time) []Action {
	return func(_ *testing.T, m *Machine, at time.Time) []Action { return m.SetHold(at, on) }
}

func tick(_ *testing.T, m *Machine, at time.Time) []Action { return m.Tick(at) }

func advert(p uint8) func(*testing.T, *Machine, time.Time) []Action {
	return func(t *testing.T, m *Machine, at time.Time) []Action { return m.Receive(at, peerAdvert(t, p, nil)) }
}

func start(_ *testing.T, m *Machine, at time.Time) []Action { return m.Start(at) }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// TestHold: a held Backup reports Held instead of taking over when the adverts stop, re-arms
// Master_Down_Timer, and becomes Master at once when released after such an expiry; a
// priority-0 advert, preemption and passive mode are unaffected. Every timer is exact.
func TestHold(t *testing.T) {
	s := t0.Add
	tests := []struct {
		name    string
		cfg     MachineConfig
		passive bool
		steps   []holdStep
	}{
		{"adverts stop while held: Held, re-armed, same episode", testConfig(100, false), false, []holdStep{
			{"start", start, 0, []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: t0}}, StateBackup, down100, false},
			{"advert", advert(150), ms(1000), nil, StateBackup, ms(1000) + down100, false},
			{"hold", hold(true), ms(1500), nil, StateBackup, ms(1000) + down100, false},
			{"expiry", tick, ms(1000) + down100, []Action{Held{Since: s(ms(1000) + down100), At: s(ms(1000) + down100)}},
				StateBackup, ms(1000) + 2*down100, true},
			{"early tick", tick, ms(1000) + 2*down100 - 1, nil, StateBackup, ms(1000) + 2*down100, true},
			{"second expiry", tick, ms(1000) + 2*down100, []Action{Held{Since: s(ms(1000) + down100), At: s(ms(1000) + 2*down100)}},
				StateBackup, ms(1000) + 3*down100, true},
			{"release: master at once", hold(false), ms(9000), []Action{SendAdvert{ourAdvert(100)},
				Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: s(ms(9000))}}, StateMaster, ms(10000), false},
		}},
		{"an advert ends the episode; release then changes nothing", testConfig(100, false), false, []holdStep{
			{"start", start, 0, []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: t0}}, StateBackup, down100, false},
			{"hold", hold(true), 0, nil, StateBackup, down100, false},
			{"expiry at start", tick, down100, []Action{Held{Since: s(down100), At: s(down100)}}, StateBackup, 2 * down100, true},
			{"advert", advert(150), ms(5000), nil, StateBackup, ms(5000) + down100, false},
			{"release", hold(false), ms(5500), nil, StateBackup, ms(5000) + down100, false},
			{"protocol timer again", tick, ms(5000) + down100, []Action{SendAdvert{ourAdvert(100)},
				Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: s(ms(5000) + down100)}}, StateMaster, ms(6000) + down100, false},
		}},
		{"release before any expiry: the timer runs on", testConfig(100, false), false, []holdStep{
			{"start", start, 0, []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: t0}}, StateBackup, down100, false},
			{"hold", hold(true), ms(100), nil, StateBackup, down100, false},
			{"hold again", hold(true), ms(200), nil, StateBackup, down100, false},
			{"release", hold(false), ms(300), nil, StateBackup, down100, false},
			{"expiry", tick, down100, []Action{SendAdvert{ourAdvert(100)},
				Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: s(down100)}}, StateMaster, down100 + ms(1000), false},
		}},
		{"priority 0 is not held", testConfig(100, false), false, []holdStep{
			{"start", start, 0, []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: t0}}, StateBackup, down100, false},
			{"hold", hold(true), 0, nil, StateBackup, down100, false},
			{"resign advert", advert(0), ms(1000), nil, StateBackup, ms(1000) + skew100, false},
			{"skew expiry", tick, ms(1000) + skew100, []Action{SendAdvert{ourAdvert(100)},
				Transition{From: StateBackup, To: StateMaster, Cause: CausePriorityZero, At: s(ms(1000) + skew100)}}, StateMaster, ms(2000) + skew100, false},
		}},
		{"preempting a lower master is not held", testConfig(150, true), false, []holdStep{
			{"start", start, 0, []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: t0}}, StateBackup, down150, false},
			{"hold", hold(true), 0, nil, StateBackup, down150, false},
			{"lower advert", advert(100), ms(1000), nil, StateBackup, down150, false},
			{"expiry", tick, down150, []Action{SendAdvert{ourAdvert(150)},
				Transition{From: StateBackup, To: StateMaster, Cause: CausePreempting, At: s(down150)}}, StateMaster, down150 + ms(1000), false},
		}},
		{"passive: no timer, nothing to hold or release", testConfig(100, false), true, []holdStep{
			{"start", start, 0, []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: t0}}, StateBackup, -1, false},
			{"hold", hold(true), 0, nil, StateBackup, -1, false},
			{"tick", tick, ms(60000), nil, StateBackup, -1, false},
			{"release", hold(false), ms(61000), nil, StateBackup, -1, false},
		}},
		{"an episode before a takeover and a resign is not released later", testConfig(100, false), false, []holdStep{
			{"start", start, 0, []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: t0}}, StateBackup, down100, false},
			{"hold", hold(true), 0, nil, StateBackup, down100, false},
			{"expiry", tick, down100, []Action{Held{Since: s(down100), At: s(down100)}}, StateBackup, 2 * down100, true},
			{"takeover", func(_ *testing.T, m *Machine, at time.Time) []Action { return m.TakeOver(at, "swap") }, ms(5000),
				[]Action{SendAdvert{ourAdvert(100)}, Transition{From: StateBackup, To: StateMaster, Cause: CauseTakeOver, At: s(ms(5000))}},
				StateMaster, ms(6000), false},
			{"resign", func(_ *testing.T, m *Machine, at time.Time) []Action { return m.Resign(at, "swap back") }, ms(7000),
				[]Action{SendAdvert{ourAdvert(0)}, Transition{From: StateMaster, To: StateBackup, Cause: CauseResigned, At: s(ms(7000))}},
				StateBackup, ms(7000) + down100, false},
			{"release", hold(false), ms(7100), nil, StateBackup, ms(7000) + down100, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMachine(t, tt.cfg)
			m.SetPassive(t0, tt.passive)
			for _, st := range tt.steps {
				got := st.do(t, m, s(st.at))
				for i, a := range got {
					if h, ok := a.(Held); ok { // reasons: TestHoldReasons
						h.Reason = ""
						got[i] = h
					}
				}
				checkActions(t, st.name, got, st.want)
				deadline := time.Time{}
				if st.deadline >= 0 {
					deadline = s(st.deadline)
				}
				checkState(t, m, st.state, deadline)
				if h := m.Status().Held; h != st.held {
					t.Errorf("%s: Status().Held = %t, want %t", st.name, h, st.held)
				}
			}
		})
	}
}

// TestHoldReasons: Held carries the timer's reason, and the Transition on release says that
// the Backup was held and since when.
func TestHoldReasons(t *testing.T) {
	m := newTestMachine(t, testConfig(100, false))
	m.Start(t0)
	m.Receive(t0.Add(time.Second), peerAdvert(t, 150, nil))
	if got := m.Status().LastAdvert; !got.Equal(t0.Add(time.Second)) {
		t.Errorf("LastAdvert = %v, want %v", got, t0.Add(time.Second))
	}
	m.SetHold(t0, true)
	acts := m.Tick(m.Deadline())
	h, ok := acts[0].(Held)
	if len(acts) != 1 || !ok || !strings.Contains(h.Reason, "no advert from master "+peerIP.String()) {
		t.Fatalf("Tick = %#v, want one Held naming the master", acts)
	}
	acts = m.SetHold(t0.Add(10*time.Second), false)
	tr, ok := acts[len(acts)-1].(Transition)
	if !ok || !strings.Contains(tr.Reason, "held since") || !strings.HasPrefix(tr.Reason, h.Reason) {
		t.Errorf("release = %#v, want a Transition saying it was held", acts)
	}
}
