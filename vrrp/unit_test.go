package vrrp

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// unitStep is one input to a unitCore and the actions it must return, exactly.
type unitStep struct {
	member  int   // the member whose event this is; -1: SetPassive(passive)
	ev      Event // From, To, Cause, Reason
	passive bool
	want    []unitAction
	role    State // the unit's role after the step
}

func ev(from, to State, cause Cause, reason string) Event {
	return Event{From: from, To: to, Cause: cause, Reason: reason, At: t0}
}

func role(from, to State, cause Cause, reason string) unitRole {
	return unitRole{Event{From: from, To: to, Cause: cause, Reason: reason, At: t0}}
}

// unitWanPreempted follows unitStartMaster: wan hears a higher-priority Master, the unit
// resigns lan, lan answers; the role names wan's cause.
var unitWanPreempted = []unitStep{
	{member: 1, ev: ev(StateMaster, StateBackup, CausePreempted, "preempted by 192.0.2.2 priority 200"),
		want: []unitAction{
			unitResign{0, "unit: group wan/52 left master (preempted by higher priority)"},
			role(StateMaster, StateBackup, CausePreempted, "group wan/52: preempted by 192.0.2.2 priority 200"),
		}, role: StateBackup},
	{member: 0, ev: ev(StateMaster, StateBackup, CauseResigned, "resigned: unit: group wan/52 left master (preempted by higher priority)"),
		role: StateBackup},
}

// start brings a two-member unit (lan/51, wan/52) to Backup, then Master through lan's
// Master_Down_Timer and wan's TakeOver.
var equateAddrs = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

var unitStartMaster = []unitStep{
	{member: -1, passive: false, want: []unitAction{unitPassive{0, false}, unitPassive{1, false}}, role: StateInitialize},
	{member: 0, ev: ev(StateInitialize, StateBackup, CauseStart, "start"), role: StateInitialize},
	{member: 1, ev: ev(StateInitialize, StateBackup, CauseStart, "start"),
		want: []unitAction{role(StateInitialize, StateBackup, CauseStart, "group wan/52: start")}, role: StateBackup},
	{member: 0, ev: ev(StateBackup, StateMaster, CauseMasterDown, "no advert"),
		want: []unitAction{unitTakeOver{1, "unit: group lan/51 became master (master down)"}}, role: StateBackup},
	{member: 1, ev: ev(StateBackup, StateMaster, CauseTakeOver, "takeover: unit: group lan/51 became master (master down)"),
		want: []unitAction{role(StateBackup, StateMaster, CauseMasterDown, "group lan/51: no advert")}, role: StateMaster},
}

func TestUnitCore(t *testing.T) {
	steps := func(more ...unitStep) []unitStep { return append(slices.Clone(unitStartMaster), more...) }
	tests := []struct {
		name  string
		steps []unitStep
	}{
		{"start, then master through one member's timer and the other's takeover", unitStartMaster},
		{"a member's interface fails: the other resigns and is held passive; back: both rejoin as backup", steps(
			unitStep{member: 0, ev: ev(StateMaster, StateInitialize, CauseInterfaceDown, "interface lan has no carrier"),
				want: []unitAction{
					unitPassive{1, true},
					unitResign{1, "unit: group lan/51 left master (interface down)"},
					role(StateMaster, StateInitialize, CauseInterfaceDown, "group lan/51: interface lan has no carrier"),
				}, role: StateInitialize},
			unitStep{member: 1, ev: ev(StateMaster, StateBackup, CauseResigned, "resigned: unit: group lan/51 left master (interface down)"),
				role: StateInitialize},
			// The held member cannot take over on its own; if it becomes Master anyway (a
			// priority-0 advert before the passive mode arrived), it resigns again.
			unitStep{member: 1, ev: ev(StateBackup, StateMaster, CausePriorityZero, "master resigned"),
				want: []unitAction{unitResign{1, "unit: group lan/51 is at fault (interface lan has no carrier)"}}, role: StateInitialize},
			unitStep{member: 1, ev: ev(StateMaster, StateBackup, CauseResigned, "resigned: unit: group lan/51 is at fault (interface lan has no carrier)"),
				role: StateInitialize},
			unitStep{member: 0, ev: ev(StateInitialize, StateBackup, CauseInterfaceBack, "interface lan back"),
				want: []unitAction{unitPassive{1, false}, role(StateInitialize, StateBackup, CauseInterfaceBack, "group lan/51: interface lan back")},
				role: StateBackup},
		)},
		{"a member hears a higher-priority master: the other resigns; the role names the first", steps(unitWanPreempted...)},
		{"the operator resigns both: no member is asked twice, one role change", steps(
			unitStep{member: 0, ev: ev(StateMaster, StateBackup, CauseResigned, "resigned: swap"),
				want: []unitAction{
					unitResign{1, "unit: group lan/51 left master (resigned)"},
					role(StateMaster, StateBackup, CauseResigned, "group lan/51: resigned: swap"),
				}, role: StateBackup},
			unitStep{member: 1, ev: ev(StateMaster, StateBackup, CauseResigned, "resigned: swap"), role: StateBackup},
		)},
		{"the peer resigns one group: this node takes the other at once", []unitStep{
			{member: 0, ev: ev(StateInitialize, StateBackup, CauseStart, "start"), role: StateInitialize},
			{member: 1, ev: ev(StateInitialize, StateBackup, CauseStart, "start"),
				want: []unitAction{role(StateInitialize, StateBackup, CauseStart, "group wan/52: start")}, role: StateBackup},
			{member: 1, ev: ev(StateBackup, StateMaster, CausePriorityZero, "master 192.0.2.2 resigned"),
				want: []unitAction{unitTakeOver{0, "unit: group wan/52 became master (priority 0 from master)"}}, role: StateBackup},
			// lan's own Master_Down_Timer won the race against the TakeOver: the origin is still wan's.
			{member: 0, ev: ev(StateBackup, StateMaster, CauseMasterDown, "no advert"),
				want: []unitAction{role(StateBackup, StateMaster, CausePriorityZero, "group wan/52: master 192.0.2.2 resigned")}, role: StateMaster},
		}},
		// lan becomes Master again on its own timer: wan is asked to take over; lan is preempted
		// again before wan answers; wan's answer does not take lan over again, and wan's own fall
		// back resigns nobody (no member is Master).
		{"an answer to the unit's takeover moves nobody: no takeover storm against a stronger peer", steps(append(slices.Clone(unitWanPreempted),
			unitStep{member: 0, ev: ev(StateBackup, StateMaster, CauseMasterDown, "no advert"),
				want: []unitAction{unitTakeOver{1, "unit: group lan/51 became master (master down)"}}, role: StateBackup},
			unitStep{member: 0, ev: ev(StateMaster, StateBackup, CausePreempted, "preempted"), role: StateBackup},
			unitStep{member: 1, ev: ev(StateBackup, StateMaster, CauseTakeOver, "takeover: unit"), role: StateBackup},
			unitStep{member: 1, ev: ev(StateMaster, StateBackup, CausePreempted, "preempted"), role: StateBackup},
		)...)},
		{"shutdown: no member is resigned by the unit", steps(
			unitStep{member: 0, ev: ev(StateMaster, StateInitialize, CauseShutdown, "shutdown"),
				want: []unitAction{role(StateMaster, StateInitialize, CauseShutdown, "group lan/51: shutdown")}, role: StateInitialize},
			unitStep{member: 1, ev: ev(StateMaster, StateInitialize, CauseShutdown, "shutdown"), role: StateInitialize},
		)},
		{"passive: the operator's mode and the fault hold combine", steps(
			unitStep{member: -1, passive: true, want: []unitAction{unitPassive{0, true}, unitPassive{1, true}}, role: StateMaster},
			unitStep{member: 1, ev: ev(StateMaster, StateInitialize, CauseInterfaceGone, "interface wan gone"),
				want: []unitAction{unitResign{0, "unit: group wan/52 left master (interface gone)"},
					role(StateMaster, StateInitialize, CauseInterfaceGone, "group wan/52: interface wan gone")}, role: StateInitialize},
			unitStep{member: -1, passive: false, want: []unitAction{unitPassive{0, true}, unitPassive{1, false}}, role: StateInitialize},
			unitStep{member: 1, ev: ev(StateInitialize, StateBackup, CauseInterfaceBack, "interface wan back"),
				want: []unitAction{unitPassive{0, false},
					role(StateInitialize, StateBackup, CauseInterfaceBack, "group wan/52: interface wan back")}, role: StateBackup},
			unitStep{member: 0, ev: ev(StateMaster, StateBackup, CauseResigned, "resigned"), role: StateBackup},
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newUnitCore([]string{"lan/51", "wan/52"})
			for i, s := range tt.steps {
				var got []unitAction
				if s.member < 0 {
					got = c.SetPassive(s.passive)
				} else {
					got = c.Member(s.member, s.ev)
				}
				if diff := cmp.Diff(s.want, got, equateAddrs); diff != "" {
					t.Fatalf("step %d (%+v): actions (-want +got):\n%s", i, s, diff)
				}
				if c.role != s.role {
					t.Fatalf("step %d: role %v, want %v", i, c.role, s.role)
				}
			}
		})
	}
}

func TestUnitCoreFaultStatus(t *testing.T) {
	c := newUnitCore([]string{"lan/51", "wan/52", "lan/53"})
	for i := range 3 {
		c.Member(i, ev(StateInitialize, StateBackup, CauseStart, "start"))
	}
	if c.fault() != "" || c.role != StateBackup || c.transitions != 1 {
		t.Fatalf("after start: fault %q role %v transitions %d", c.fault(), c.role, c.transitions)
	}
	c.Member(2, ev(StateBackup, StateInitialize, CauseInterfaceDown, "interface lan has no carrier"))
	if got, want := c.fault(), "group lan/53: interface lan has no carrier"; got != want {
		t.Errorf("fault %q, want %q", got, want)
	}
	c.Member(2, ev(StateInitialize, StateBackup, CauseInterfaceBack, "interface lan back"))
	if c.fault() != "" || c.role != StateBackup || c.transitions != 3 {
		t.Errorf("after the fault: fault %q role %v transitions %d", c.fault(), c.role, c.transitions)
	}
}

// fakeMember records the Unit's calls and reports transitions when told.
type fakeMember struct {
	onEvent func(Event)
	mu      sync.Mutex
	calls   []string
	status  Status
	runErr  error
}

func (f *fakeMember) note(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeMember) Run(ctx context.Context) error {
	if f.runErr != nil {
		return f.runErr
	}
	<-ctx.Done()
	return nil
}

func (f *fakeMember) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeMember) SetPassive(on bool) {
	if on {
		f.note("passive")
	} else {
		f.note("active")
	}
}
func (f *fakeMember) Resign(reason string)   { f.note("resign: " + reason) }
func (f *fakeMember) TakeOver(reason string) { f.note("takeover: " + reason) }
func (f *fakeMember) Reload(rc RuntimeConfig) error {
	f.note("reload")
	return nil
}

func (f *fakeMember) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func newFakeUnit(t *testing.T, cfg UnitConfig) (*Unit, []*fakeMember) {
	t.Helper()
	var fakes []*fakeMember
	cfgs := []Config{{Interface: "lan", VRID: 51}, {Interface: "wan", VRID: 52}}
	u, err := NewUnit(cfg, cfgs, func(c Config) (Member, error) {
		f := &fakeMember{onEvent: c.OnEvent}
		f.status = Status{Priority: 100 + c.VRID, MasterIP: netip.MustParseAddr("192.0.2.2"),
			Dropped: map[string]uint64{"auth": uint64(c.VRID)}}
		fakes = append(fakes, f)
		return f, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return u, fakes
}

// The driver: member events reach OnMemberEvent then OnEvent in order; the core's actions
// reach the members; Status follows the role; the operator's controls fan out.
func TestUnitDriver(t *testing.T) {
	var mu sync.Mutex
	var stream []string
	u, f := newFakeUnit(t, UnitConfig{
		OnEvent: func(e Event) {
			mu.Lock()
			stream = append(stream, "unit "+e.From.String()+"->"+e.To.String()+" "+e.Reason+" master "+e.MasterIP.String())
			mu.Unlock()
		},
		OnMemberEvent: func(e MemberEvent) {
			mu.Lock()
			stream = append(stream, e.Name+" "+e.From.String()+"->"+e.To.String())
			mu.Unlock()
		},
	})
	if got := u.Names(); !slices.Equal(got, []string{"lan/51", "wan/52"}) {
		t.Fatalf("names %v", got)
	}
	u.SetPassive(true)
	f[0].onEvent(ev(StateInitialize, StateBackup, CauseStart, "start"))
	f[1].onEvent(ev(StateInitialize, StateBackup, CauseStart, "start"))
	f[1].onEvent(ev(StateBackup, StateMaster, CauseTakeOver, "takeover: x"))
	f[0].onEvent(ev(StateBackup, StateMaster, CauseTakeOver, "takeover: x"))
	f[0].status.VirtualIPs = []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")}
	f[1].status.VirtualIPs = []netip.Prefix{netip.MustParsePrefix("198.51.100.100/24")}
	f[1].status.RecordError = "disk full"
	u.Resign("swap")
	u.TakeOver("again")
	if err := u.Reload(RuntimeConfig{Priority: 150}); err != nil {
		t.Fatal(err)
	}
	if err := u.Reload(RuntimeConfig{}); !errors.Is(err, ErrRuntimeConfig) {
		t.Errorf("Reload with priority 0: %v, want ErrRuntimeConfig", err)
	}
	if err := u.ReloadMember(2, RuntimeConfig{Priority: 1}); !errors.Is(err, ErrRuntimeConfig) {
		t.Errorf("ReloadMember(2): %v, want ErrRuntimeConfig", err)
	}
	wantStream := []string{
		"lan/51 initialize->backup",
		"wan/52 initialize->backup",
		"unit initialize->backup group wan/52: start master 192.0.2.2",
		"wan/52 backup->master",
		"lan/51 backup->master",
		"unit backup->master group wan/52: takeover: x master 192.0.2.2",
	}
	if diff := cmp.Diff(wantStream, stream); diff != "" {
		t.Errorf("event stream (-want +got):\n%s", diff)
	}
	want0 := []string{"passive", "takeover: unit: group wan/52 became master (takeover)", "resign: swap", "takeover: again", "reload"}
	want1 := []string{"passive", "resign: swap", "takeover: again", "reload"}
	if diff := cmp.Diff(want0, f[0].callLog()); diff != "" {
		t.Errorf("lan's calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want1, f[1].callLog()); diff != "" {
		t.Errorf("wan's calls (-want +got):\n%s", diff)
	}
	s := u.Status()
	want := Status{State: StateMaster, Since: t0, Transitions: 2, Priority: 151, MasterIP: netip.MustParseAddr("192.0.2.2"),
		VirtualIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24"), netip.MustParsePrefix("198.51.100.100/24")},
		Dropped:    map[string]uint64{"auth": 103}, RecordError: "wan/52: disk full", Passive: true}
	if diff := cmp.Diff(want, s, equateAddrs); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
	if m := u.Members(); len(m) != 2 || m[1].Name != "wan/52" || m[1].Priority != 152 {
		t.Errorf("Members: %+v", m)
	}
}

// A member whose Run fails stops the others; Run returns the member's error, named.
func TestUnitRunStopsWithAMember(t *testing.T) {
	u, f := newFakeUnit(t, UnitConfig{})
	boom := errors.New("boom")
	f[1].runErr = boom
	err := u.Run(context.Background())
	if !errors.Is(err, boom) || err.Error() != "wan/52: boom" {
		t.Errorf("Run: %v, want wan/52: boom", err)
	}
}

func TestNewUnitRefuses(t *testing.T) {
	dial := func(c Config) (Member, error) { return &fakeMember{}, nil }
	if _, err := NewUnit(UnitConfig{}, nil, dial); err == nil {
		t.Error("a unit without members was accepted")
	}
	if _, err := NewUnit(UnitConfig{}, []Config{{Interface: "lan", VRID: 1}, {Interface: "lan", VRID: 1}}, dial); err == nil {
		t.Error("two members lan/1 were accepted")
	}
	closed := 0
	n := 0
	_, err := NewUnit(UnitConfig{}, []Config{{Interface: "lan", VRID: 1}, {Interface: "wan", VRID: 1}}, func(c Config) (Member, error) {
		n++
		if n == 2 {
			return nil, errors.New("no such interface")
		}
		return closerMember{&fakeMember{}, &closed}, nil
	})
	if err == nil || err.Error() != "vrrp: unit member wan/1: no such interface" || closed != 1 {
		t.Errorf("a failed dial: %v, %d closed; want the member named and the first closed", err, closed)
	}
}

type closerMember struct {
	*fakeMember
	closed *int
}

func (c closerMember) Close() error { *c.closed++; return nil }
