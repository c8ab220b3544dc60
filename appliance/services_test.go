package appliance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redundantd/redundantd/vrrp"
)

// seqString renders a seqNext as the tables below write it: "start 1", "stop 0",
// "applied master", "applied master failed [1]", or "-" for nothing to do.
func seqString(n seqNext) string {
	switch {
	case n.Run:
		return fmt.Sprintf("%s %d", n.Step.Op, n.Step.Service)
	case n.Applied && len(n.Failed) > 0:
		return fmt.Sprintf("applied %s failed %v", n.Role, n.Failed)
	case n.Applied:
		return fmt.Sprintf("applied %s", n.Role)
	}
	return "-"
}

func TestSequencer(t *testing.T) {
	// Each input is "master", "backup", "init" (Follow) or "ok" / "fail" (Done of the step
	// in flight, or of "start 2" style step given after the word: "ok stop 1").
	type io struct{ in, want string }
	tests := []struct {
		name   string
		n      int
		script []io
		states string // the services' states at the end
	}{
		{"master starts in order", 3, []io{
			{"master", "start 0"}, {"ok", "start 1"}, {"ok", "start 2"}, {"ok", "applied master"},
		}, "running running running"},
		{"backup stops in reverse order", 3, []io{
			{"master", "start 0"}, {"ok", "start 1"}, {"ok", "start 2"}, {"ok", "applied master"},
			{"backup", "stop 2"}, {"ok", "stop 1"}, {"ok", "stop 0"}, {"ok", "applied backup"},
		}, "stopped stopped stopped"},
		{"first role backup stops every unknown service", 2, []io{
			{"backup", "stop 1"}, {"ok", "stop 0"}, {"ok", "applied backup"},
		}, "stopped stopped"},
		{"initialize stops like backup", 2, []io{
			{"init", "stop 1"}, {"ok", "stop 0"}, {"ok", "applied initialize"},
		}, "stopped stopped"},
		{"same role again does nothing", 2, []io{
			{"master", "start 0"}, {"master", "-"}, {"ok", "start 1"}, {"ok", "applied master"}, {"master", "-"},
		}, "running running"},
		{"failed start continues with the next and is reported", 3, []io{
			{"master", "start 0"}, {"fail", "start 1"}, {"ok", "start 2"}, {"ok", "applied master failed [0]"},
		}, "failed running running"},
		{"failed start is retried by the next master role only", 2, []io{
			{"master", "start 0"}, {"ok", "start 1"}, {"fail", "applied master failed [1]"},
			{"backup", "stop 1"}, {"ok", "stop 0"}, {"ok", "applied backup"},
			{"master", "start 0"}, {"ok", "start 1"}, {"ok", "applied master"},
		}, "running running"},
		{"failed stop continues and the next backup role stops it again", 3, []io{
			{"backup", "stop 2"}, {"ok", "stop 1"}, {"fail", "stop 0"}, {"ok", "applied backup failed [1]"},
			{"master", "start 0"}, {"ok", "start 1"}, {"ok", "start 2"}, {"ok", "applied master"},
			{"backup", "stop 2"}, {"ok", "stop 1"}, {"ok", "stop 0"}, {"ok", "applied backup"},
		}, "stopped stopped stopped"},
		{"newer role supersedes: pending starts dropped, running step finishes first", 3, []io{
			{"master", "start 0"}, {"ok", "start 1"},
			{"backup", "-"}, // start 1 is in flight: nothing new may run
			{"ok", "stop 2"}, {"ok", "stop 1"}, {"ok", "stop 0"}, {"ok", "applied backup"},
		}, "stopped stopped stopped"}, // service 2 was never started, but it is unknown: stopped to be sure
		{"superseding step that fails is still stopped", 2, []io{
			{"master", "start 0"}, {"backup", "-"}, {"fail", "stop 1"}, {"ok", "stop 0"}, {"ok", "applied backup"},
		}, "stopped stopped"},
		{"only the newest of several roles is applied", 3, []io{
			{"master", "start 0"}, {"backup", "-"}, {"master", "-"}, {"backup", "-"},
			{"ok", "stop 2"}, {"ok", "stop 1"}, {"ok", "stop 0"}, {"ok", "applied backup"},
		}, "stopped stopped stopped"},
		{"back to the same role before the step ends resumes it", 3, []io{
			{"master", "start 0"}, {"ok", "start 1"}, {"backup", "-"}, {"master", "-"},
			{"ok", "start 2"}, {"ok", "applied master"},
		}, "running running running"},
		{"master after a superseded backup starts only what was stopped", 3, []io{
			{"master", "start 0"}, {"ok", "start 1"}, {"ok", "start 2"}, {"ok", "applied master"},
			{"backup", "stop 2"}, {"master", "-"}, {"ok", "start 2"}, {"ok", "applied master"},
		}, "running running running"},
		{"stale or unexpected acknowledgements are ignored", 2, []io{
			{"ok", "-"}, {"master", "start 0"}, {"ok stop 0", "-"}, {"ok start 1", "-"}, {"ok", "start 1"},
			{"ok", "applied master"}, {"ok", "-"},
		}, "running running"},
		{"no services: every role is applied at once", 0, []io{
			{"master", "applied master"}, {"backup", "applied backup"},
		}, ""},
	}
	roles := map[string]vrrp.State{"master": vrrp.StateMaster, "backup": vrrp.StateBackup, "init": vrrp.StateInitialize}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSequencer(tt.n)
			var inFlight step
			for i, x := range tt.script {
				var got seqNext
				if r, ok := roles[x.in]; ok {
					got = s.Follow(r)
				} else {
					f := strings.Fields(x.in)
					st := inFlight
					if len(f) == 3 {
						var op stepOp = opStart
						if f[1] == "stop" {
							op = opStop
						}
						var idx int
						fmt.Sscan(f[2], &idx)
						st = step{Service: idx, Op: op}
					}
					got = s.Done(st, f[0] == "ok")
				}
				if got.Run {
					inFlight = got.Step
				}
				if g := seqString(got); g != x.want {
					t.Fatalf("step %d: %s -> %q, want %q", i, x.in, g, x.want)
				}
			}
			var states []string
			for i := range tt.n {
				states = append(states, s.State(i).String())
			}
			if got := strings.Join(states, " "); got != tt.states {
				t.Errorf("final states %q, want %q", got, tt.states)
			}
			if !s.Settled() {
				t.Error("not settled at the end of the script")
			}
		})
	}
}

func TestSequencerStatesWhileInFlight(t *testing.T) {
	s := newSequencer(2)
	s.Follow(vrrp.StateMaster)
	if got := s.State(0); got != ServiceStarting {
		t.Errorf("state during start = %s, want starting", got)
	}
	if s.Settled() {
		t.Error("settled with a step in flight")
	}
	s.Done(step{0, opStart}, true)
	s.Done(step{1, opStart}, true)
	s.Follow(vrrp.StateBackup)
	if got := s.State(1); got != ServiceStopping {
		t.Errorf("state during stop = %s, want stopping", got)
	}
}

func TestHealthTracker(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// ops: "activate", "deactivate", "ok", "fail" (a check due now, then its result),
	// "late" (the result of a check made before the last deactivate), "start-ok",
	// "start-fail". want is the verdict change and, after it, the verdict.
	type op struct {
		t      int
		op     string
		change healthChange
		health string // "healthy" or the reason
	}
	tests := []struct {
		name     string
		hasCheck bool
		fall     int
		rise     int
		ops      []op
	}{
		{"fall consecutive failures make it unhealthy", true, 3, 2, []op{
			{0, "activate", healthSame, "healthy"},
			{5, "fail", healthSame, "healthy"},
			{10, "fail", healthSame, "healthy"},
			{15, "fail", healthBecameUnhealthy, "service asterisk failed"},
			{20, "fail", healthSame, "service asterisk failed"},
		}},
		{"a success resets the failure count", true, 3, 2, []op{
			{0, "activate", healthSame, "healthy"},
			{5, "fail", healthSame, "healthy"},
			{10, "fail", healthSame, "healthy"},
			{15, "ok", healthSame, "healthy"},
			{20, "fail", healthSame, "healthy"},
			{25, "fail", healthSame, "healthy"},
			{30, "fail", healthBecameUnhealthy, "service asterisk failed"},
		}},
		{"rise consecutive successes make it healthy again", true, 1, 2, []op{
			{0, "activate", healthSame, "healthy"},
			{5, "fail", healthBecameUnhealthy, "service asterisk failed"},
			{10, "ok", healthSame, "service asterisk failed"},
			{15, "fail", healthSame, "service asterisk failed"},
			{20, "ok", healthSame, "service asterisk failed"},
			{25, "ok", healthBecameHealthy, "healthy"},
		}},
		{"the verdict survives leaving Master; counting restarts", true, 2, 2, []op{
			{0, "activate", healthSame, "healthy"},
			{5, "fail", healthSame, "healthy"},
			{10, "fail", healthBecameUnhealthy, "service asterisk failed"},
			{11, "deactivate", healthSame, "service asterisk failed"},
			{50, "activate", healthSame, "service asterisk failed"},
			{55, "ok", healthSame, "service asterisk failed"},
			{60, "ok", healthBecameHealthy, "healthy"},
		}},
		{"failures before leaving Master do not count after", true, 2, 1, []op{
			{0, "activate", healthSame, "healthy"},
			{5, "fail", healthSame, "healthy"},
			{6, "deactivate", healthSame, "healthy"},
			{10, "activate", healthSame, "healthy"},
			{15, "fail", healthSame, "healthy"},
			{20, "fail", healthBecameUnhealthy, "service asterisk failed"},
		}},
		{"a late result of an old check is ignored", true, 1, 1, []op{
			{0, "activate", healthSame, "healthy"},
			{5, "late", healthSame, "healthy"},
			{10, "fail", healthBecameUnhealthy, "service asterisk failed"},
		}},
		{"a failed start is unhealthy at once, a check must clear it", true, 3, 2, []op{
			{0, "start-fail", healthBecameUnhealthy, "service asterisk failed to start"},
			{1, "start-ok", healthSame, "service asterisk failed to start"},
			{1, "activate", healthSame, "service asterisk failed to start"},
			{6, "ok", healthSame, "service asterisk failed to start"},
			{11, "ok", healthBecameHealthy, "healthy"},
		}},
		{"without a check a good start clears a failed one", false, 3, 2, []op{
			{0, "start-fail", healthBecameUnhealthy, "service asterisk failed to start"},
			{0, "activate", healthSame, "service asterisk failed to start"},
			{1, "start-ok", healthBecameHealthy, "healthy"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHealthTracker(tt.hasCheck, 5*time.Second, tt.fall, tt.rise)
			var oldToken uint64
			for i, o := range tt.ops {
				now := at(o.t)
				var got healthChange
				switch o.op {
				case "activate":
					h.Activate(now)
				case "deactivate":
					h.Deactivate()
				case "start-ok", "start-fail":
					got = h.Started(o.op == "start-ok", "asterisk")
				case "late":
					// A check is started, the node leaves Master and comes back, then the
					// old check answers "ok" while a new one is due.
					tok, due := h.Due(now)
					if !due {
						t.Fatalf("op %d: no check due at %ds", i, o.t)
					}
					oldToken = tok
					h.Deactivate()
					h.Activate(now)
					got = h.Result(now, oldToken, true, "asterisk")
				case "ok", "fail":
					if d := h.Deadline(); !d.Equal(now) {
						t.Fatalf("op %d: next check due at %v, want %ds", i, d.Sub(t0), o.t)
					}
					if _, due := h.Due(now.Add(-time.Nanosecond)); due {
						t.Fatalf("op %d: check due early", i)
					}
					tok, due := h.Due(now)
					if !due {
						t.Fatalf("op %d: no check due at %ds", i, o.t)
					}
					if _, again := h.Due(now); again {
						t.Fatalf("op %d: a second check due while one is in flight", i)
					}
					got = h.Result(now, tok, o.op == "ok", "asterisk")
				}
				if got != o.change {
					t.Errorf("op %d (%s at %ds): change %d, want %d", i, o.op, o.t, got, o.change)
				}
				health := "healthy"
				if ok, why := h.Healthy(); !ok {
					health = why
				}
				if health != o.health {
					t.Errorf("op %d (%s at %ds): verdict %q, want %q", i, o.op, o.t, health, o.health)
				}
			}
		})
	}
}

func TestHealthTrackerInactiveSchedulesNothing(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	h := newHealthTracker(true, time.Second, 1, 1)
	if _, due := h.Due(now.Add(time.Hour)); due || !h.Deadline().IsZero() {
		t.Error("an inactive tracker schedules a check")
	}
	noCheck := newHealthTracker(false, time.Second, 1, 1)
	noCheck.Activate(now)
	if _, due := noCheck.Due(now.Add(time.Hour)); due || !noCheck.Deadline().IsZero() {
		t.Error("a service without a check schedules one")
	}
	h.Activate(now)
	tok, _ := h.Due(now.Add(time.Second))
	if !h.Deadline().IsZero() {
		t.Error("deadline set while a check is in flight")
	}
	h.Result(now.Add(3*time.Second), tok, false, "x")
	if got := h.Deadline(); !got.Equal(now.Add(4 * time.Second)) {
		t.Errorf("next check at %v, want one interval after the last result", got.Sub(now))
	}
	if h.Failures() != 1 {
		t.Errorf("failures = %d, want 1", h.Failures())
	}
}

func TestVerdict(t *testing.T) {
	mk := func(unhealthy bool, reason string) *healthTracker {
		return &healthTracker{unhealthy: unhealthy, reason: reason}
	}
	tests := []struct {
		trackers []*healthTracker
		ok       bool
		why      string
	}{
		{nil, true, ""},
		{[]*healthTracker{mk(false, ""), mk(false, "")}, true, ""},
		{[]*healthTracker{mk(false, ""), mk(true, "service b failed"), mk(true, "service c failed")}, false, "service b failed"},
	}
	for i, tt := range tests {
		ok, why := verdict(tt.trackers)
		if diff := cmp.Diff([]any{tt.ok, tt.why}, []any{ok, why}); diff != "" {
			t.Errorf("case %d (-want +got):\n%s", i, diff)
		}
	}
}
