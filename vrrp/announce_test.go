package vrrp

import (
	"testing"
	"time"
)

// Every step of the gratuitous ARP schedule, with the exact deadline after it.
func TestAnnounceSchedule(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	at := func(n int) time.Time { return t0.Add(ms(n)) }
	type step struct {
		at   int    // ms after t0
		op   string // burst, reassert, due, stop, refresh=<ms>
		send bool   // the caller sends a round now
		next int    // the deadline after the step, ms after t0; -1: none
	}
	for _, tc := range []struct {
		name                     string
		count, interval, refresh int
		steps                    []step
	}{
		{"burst without refresh", 3, 200, 0, []step{
			{0, "burst", true, 200},
			{199, "due", false, 200}, // early: nothing
			{200, "due", true, 400},
			{400, "due", true, -1},
			{5000, "due", false, -1},
		}},
		{"burst then refresh", 2, 200, 60000, []step{
			{0, "burst", true, 200},
			{200, "due", true, 60200},
			{60200, "due", true, 120200},
			{120201, "due", true, 180201}, // a late timer: the next counts from the round sent
		}},
		{"one-round burst then refresh", 1, 200, 1000, []step{
			{0, "burst", true, 1000},
			{1000, "due", true, 2000},
		}},
		{"reassert during a burst does nothing", 3, 200, 1000, []step{
			{0, "burst", true, 200},
			{100, "reassert", false, 200},
			{200, "due", true, 400},
			{400, "due", true, 1400},
			{900, "reassert", true, 1100}, // between refresh rounds: a fresh burst
			{1100, "due", true, 1300},
			{1300, "due", true, 2300},
		}},
		{"reassert without the addresses does nothing", 3, 200, 1000, []step{
			{0, "reassert", false, -1},
			{0, "due", false, -1},
		}},
		{"stop ends everything", 3, 200, 1000, []step{
			{0, "burst", true, 200},
			{100, "stop", false, -1},
			{200, "due", false, -1},
			{300, "reassert", false, -1},
			{400, "burst", true, 600}, // Master again
		}},
		{"refresh turned on between rounds applies at once", 2, 200, 0, []step{
			{0, "burst", true, 200},
			{200, "due", true, -1},
			{5000, "refresh=1000", false, 6000},
			{6000, "due", true, 7000},
			{6500, "refresh=0", false, -1},
			{7000, "due", false, -1},
		}},
		{"refresh changed during a burst applies after it", 2, 200, 0, []step{
			{0, "burst", true, 200},
			{100, "refresh=1000", false, 200},
			{200, "due", true, 1200},
		}},
		{"refresh changed while not Master waits for the burst", 2, 200, 0, []step{
			{0, "refresh=1000", false, -1},
			{10, "burst", true, 210},
			{210, "due", true, 1210},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := announceSchedule{count: tc.count, interval: ms(tc.interval), refresh: ms(tc.refresh)}
			for i, st := range tc.steps {
				now := at(st.at)
				send := false
				switch st.op {
				case "burst":
					s.burst(now)
					send = true
				case "reassert":
					send = s.reassert(now)
				case "due":
					send = s.due(now)
				case "stop":
					s.stop()
				case "refresh=0":
					s.configure(now, tc.count, ms(tc.interval), 0)
				case "refresh=1000":
					s.configure(now, tc.count, ms(tc.interval), ms(1000))
				default:
					t.Fatalf("step %d: unknown op %q", i, st.op)
				}
				want := time.Time{}
				if st.next >= 0 {
					want = at(st.next)
				}
				if send != st.send || !s.deadline().Equal(want) {
					t.Errorf("step %d (%s at %d ms): send %t, deadline %v; want send %t, deadline %v",
						i, st.op, st.at, send, s.deadline().Sub(t0), st.send, want.Sub(t0))
				}
			}
		})
	}
}

// configure changes the count from the next burst and the spacing from the next round.
func TestAnnounceScheduleConfigureBurst(t *testing.T) {
	s := announceSchedule{count: 3, interval: 200 * time.Millisecond}
	s.burst(t0)
	s.configure(t0.Add(50*time.Millisecond), 2, time.Second, 0)
	if !s.deadline().Equal(t0.Add(200 * time.Millisecond)) {
		t.Errorf("round already due: deadline %v; want it kept at 200ms", s.deadline().Sub(t0))
	}
	if !s.due(t0.Add(200*time.Millisecond)) || !s.deadline().Equal(t0.Add(1200*time.Millisecond)) || s.left != 1 {
		t.Errorf("running burst: deadline %v, %d left; want the new spacing (1.2s) and the old count (1 left)", s.deadline().Sub(t0), s.left)
	}
	s.due(t0.Add(1200 * time.Millisecond))
	s.burst(t0.Add(10 * time.Second))
	if want := t0.Add(11 * time.Second); !s.deadline().Equal(want) || s.left != 1 {
		t.Errorf("next burst: deadline %v, %d rounds left; want 11s and 1", s.deadline().Sub(t0), s.left)
	}
}
