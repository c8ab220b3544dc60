package vrrp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Member is what a [Unit] needs of each of its virtual routers: *Router in production. Its
// controls must not wait and must not call back into the Unit (the Router's enqueue their
// request for its own goroutine).
type Member interface {
	Run(ctx context.Context) error
	Status() Status
	SetPassive(on bool)
	Resign(reason string)
	TakeOver(reason string)
	Reload(rc RuntimeConfig) error
}

var _ Member = (*Router)(nil)

// MemberEvent is a state transition of one member of a [Unit]: which member, by index and by
// name ("<interface>/<vrid>"), and the member's own Event.
type MemberEvent struct {
	Member int
	Name   string
	Event
}

// UnitConfig configures a [Unit].
type UnitConfig struct {
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// OnEvent is called for every change of the unit's role (see [Unit.Status] for how the
	// role follows the members): From and To are the unit's states, Cause and Reason those of
	// the member event that started the move (Reason prefixed with "group <name>: "), At and
	// Err those of the member event that completed it, MasterIP member 0's. It is called
	// after the OnMemberEvent that caused it, from that member's goroutine, under the unit's
	// lock, so that the two streams are one ordered stream. It must not block (see
	// Config.OnEvent).
	OnEvent func(Event)
	// OnMemberEvent is called for every member transition, in order, before the unit's
	// reaction to it. nil ignores them.
	OnMemberEvent func(MemberEvent)
}

// Unit runs several virtual routers of one node as one (keepalived's vrrp_sync_group): the
// groups of the node's LAN and WAN interfaces, say, which must be Master on the same node or
// the PBX is reachable on one side only. The rules (unitCore):
//
//   - When a member leaves Master (its interface failed, it heard a Master of higher
//     priority, it was resigned), the others that are Master resign (a priority-0 advert,
//     addresses released), so the peer node takes every group at Skew_Time.
//   - When a member becomes Master (its Master_Down_Timer, a resigning peer, preemption), the
//     others take over at once (TakeOver), so the unit is not split between the nodes for a
//     Master_Down_Interval.
//   - While a member's interface is at fault, the others are held passive (they never take
//     over on their own) and a member that becomes Master anyway resigns: the node cannot
//     serve every group, so it serves none. When the fault clears, the operator's Backup mode
//     applies again.
//
// The Unit satisfies the same contract as a Router (Run, Status, SetPassive, Resign,
// TakeOver, Reload), so the appliance sees one role. Give every group of a node the same
// priority relation to the peer's groups (both higher or both lower) and the same Preempt:
// with crossed priorities the two nodes' units take the role from each other in turn.
type Unit struct {
	log           *slog.Logger
	members       []Member
	onEvent       func(Event)
	onMemberEvent func(MemberEvent)

	mu   sync.Mutex // orders the member events, the core and the callbacks
	core *unitCore
}

// NewUnit dials one member for each of cfgs (at least one) with dial (Dial in production),
// after setting each Config's OnEvent to the Unit's own: the Unit reports to cfg.OnEvent and
// cfg.OnMemberEvent. A member is named "<interface>/<vrid>"; two members with the same name
// are refused. When a dial fails, the members already dialed are closed (when they are
// io.Closers) and the error names the member.
func NewUnit(cfg UnitConfig, cfgs []Config, dial func(Config) (Member, error)) (*Unit, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("vrrp: a Unit needs at least one member")
	}
	names := make([]string, len(cfgs))
	for i, c := range cfgs {
		names[i] = fmt.Sprintf("%s/%d", c.Interface, c.VRID)
		if slices.Contains(names[:i], names[i]) {
			return nil, fmt.Errorf("vrrp: Unit members %d and %d are both %s", slices.Index(names, names[i]), i, names[i])
		}
	}
	u := &Unit{
		log:           cfg.Logger,
		onEvent:       cfg.OnEvent,
		onMemberEvent: cfg.OnMemberEvent,
		core:          newUnitCore(names),
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.onEvent == nil {
		u.onEvent = func(Event) {}
	}
	if u.onMemberEvent == nil {
		u.onMemberEvent = func(MemberEvent) {}
	}
	for i, c := range cfgs {
		c.OnEvent = func(e Event) { u.memberEvent(i, e) }
		m, err := dial(c)
		if err != nil {
			u.closeMembers()
			return nil, fmt.Errorf("vrrp: unit member %s: %w", names[i], err)
		}
		u.members = append(u.members, m)
	}
	return u, nil
}

// closeMembers closes the members that are io.Closers (for a Unit whose Run never runs).
func (u *Unit) closeMembers() error {
	var errs []error
	for _, m := range u.members {
		if c, ok := m.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Close releases the members' I/O; call it only for a Unit whose Run was never called.
func (u *Unit) Close() error { return u.closeMembers() }

// Names returns the members' names, in order.
func (u *Unit) Names() []string { return slices.Clone(u.core.names) }

// memberEvent runs on member i's goroutine for each of its transitions.
func (u *Unit) memberEvent(i int, e Event) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.onMemberEvent(MemberEvent{Member: i, Name: u.core.names[i], Event: e})
	u.perform(u.core.Member(i, e))
}

// perform carries out the core's actions; the caller holds u.mu. Member controls only queue
// their request, so nothing here waits.
func (u *Unit) perform(actions []unitAction) {
	for _, a := range actions {
		switch a := a.(type) {
		case unitRole:
			ev := a.Event
			if len(u.members) > 0 {
				ev.MasterIP = u.members[0].Status().MasterIP
			}
			u.log.Info("unit role", "from", ev.From, "to", ev.To, "cause", ev.Cause, "reason", ev.Reason)
			u.onEvent(ev)
		case unitResign:
			u.log.Info("resigning a member with the unit", "member", u.core.names[a.Member], "reason", a.Reason)
			u.members[a.Member].Resign(a.Reason)
		case unitTakeOver:
			u.log.Info("a member takes over with the unit", "member", u.core.names[a.Member], "reason", a.Reason)
			u.members[a.Member].TakeOver(a.Reason)
		case unitPassive:
			u.members[a.Member].SetPassive(a.On)
		}
	}
}

// Run runs every member until ctx is cancelled, and returns when all have returned (each
// Master resigns on the way out, see [Router.Run]). When a member's Run fails before that,
// the others are stopped too: a unit missing a member cannot move as one.
func (u *Unit) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(u.members))
	var wg sync.WaitGroup
	for i, m := range u.members {
		wg.Go(func() {
			err := m.Run(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", u.core.names[i], err)
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SetPassive sets the operator's Backup mode on every member (see [Router.SetPassive]); a
// member is also held passive while another member is at fault.
func (u *Unit) SetPassive(on bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.perform(u.core.SetPassive(on))
}

// Resign makes every member that is Master resign (see [Router.Resign]).
func (u *Unit) Resign(reason string) {
	for _, m := range u.members {
		m.Resign(reason)
	}
}

// TakeOver makes every member that is Backup take over (see [Router.TakeOver]). While a
// member is at fault the others resign again: the unit takes over only whole.
func (u *Unit) TakeOver(reason string) {
	for _, m := range u.members {
		m.TakeOver(reason)
	}
}

// SetHold holds or releases every member that can be held (see [Router.SetHold]): the
// caller's second heartbeat speaks for the peer node, whose groups move as one unit too.
func (u *Unit) SetHold(on bool) {
	for _, m := range u.members {
		if h, ok := m.(interface{ SetHold(bool) }); ok {
			h.SetHold(on)
		}
	}
}

// Reload applies rc to every member (see [Router.Reload]); use ReloadMember for members with
// their own settings. rc is checked once: an invalid one changes nothing.
func (u *Unit) Reload(rc RuntimeConfig) error {
	if _, err := rc.validate(); err != nil {
		return err
	}
	for i := range u.members {
		if err := u.ReloadMember(i, rc); err != nil {
			return err
		}
	}
	return nil
}

// ReloadMember applies rc to member i only.
func (u *Unit) ReloadMember(i int, rc RuntimeConfig) error {
	if i < 0 || i >= len(u.members) {
		return fmt.Errorf("%w: no member %d (the unit has %d)", ErrRuntimeConfig, i, len(u.members))
	}
	return u.members[i].Reload(rc)
}

// Status returns the unit's role and a summary of its members. State is the role the
// appliance follows, as OnEvent reports it:
//
//   - Initialize when any member is in Initialize: not started yet, stopped, or out of the
//     protocol because its interface failed (then Fault names the member and the fault);
//   - otherwise Master when every member is Master;
//   - otherwise Backup: also while the members are on their way to or from Master (some
//     Master, some Backup), so the services start only once every group's addresses are
//     held, and stop as soon as one group has lost them.
//
// Since and Transitions are the unit's own role changes. Priority, Preempt and MasterIP are
// member 0's (the first group), VirtualIPs those every member holds, Dropped the members'
// counts summed by reason, Adverts the members' counts summed, RecordError the members'
// (each prefixed with its name), Passive the operator's Backup mode, PreemptSuppressed true
// when any member's is.
func (u *Unit) Status() Status {
	u.mu.Lock()
	s := Status{State: u.core.role, Since: u.core.since, Transitions: u.core.transitions,
		Passive: u.core.passive, Fault: u.core.fault()}
	u.mu.Unlock()
	var recErrs []string
	for i, m := range u.members {
		ms := m.Status()
		if i == 0 {
			s.Priority, s.Preempt, s.MasterIP = ms.Priority, ms.Preempt, ms.MasterIP
		}
		s.VirtualIPs = append(s.VirtualIPs, ms.VirtualIPs...)
		s.Adverts = s.Adverts.Add(ms.Adverts)
		for k, v := range ms.Dropped {
			if s.Dropped == nil {
				s.Dropped = map[string]uint64{}
			}
			s.Dropped[k] += v
		}
		if ms.RecordError != "" {
			recErrs = append(recErrs, u.core.names[i]+": "+ms.RecordError)
		}
		s.PreemptSuppressed = s.PreemptSuppressed || ms.PreemptSuppressed
	}
	s.RecordError = strings.Join(recErrs, "; ")
	return s
}

// Members returns each member's own status, in order, with its name.
func (u *Unit) Members() []MemberStatus {
	out := make([]MemberStatus, len(u.members))
	for i, m := range u.members {
		st := m.Status()
		st.Dropped = maps.Clone(st.Dropped)
		out[i] = MemberStatus{Name: u.core.names[i], Status: st}
	}
	return out
}

// MemberStatus is one member's status in [Unit.Members].
type MemberStatus struct {
	Name string
	Status
}

// unitAction is what the unit's core asks of its driver.
type unitAction interface{ isUnitAction() }

// unitRole: the unit's role changed; report Event (MasterIP is filled in by the driver).
type unitRole struct{ Event }

// unitResign: make a member resign.
type unitResign struct {
	Member int
	Reason string
}

// unitTakeOver: make a member take over.
type unitTakeOver struct {
	Member int
	Reason string
}

// unitPassive: set a member's passive mode.
type unitPassive struct {
	Member int
	On     bool
}

func (unitRole) isUnitAction()     {}
func (unitResign) isUnitAction()   {}
func (unitTakeOver) isUnitAction() {}
func (unitPassive) isUnitAction()  {}

// unitCore decides what the members of a Unit do about each other's transitions. It is pure:
// no clock, no lock, no goroutine; the Unit feeds it the members' events in order.
type unitCore struct {
	names       []string
	members     []unitMember
	passive     bool  // the operator's Backup mode
	role        State // the unit's role, as last reported
	since       time.Time
	transitions uint64
}

// unitMember is what the core knows of one member.
type unitMember struct {
	state   State
	fault   string // the member's fault reason while its interface fails; "" otherwise
	passive bool   // the passive mode last set on it by the core
	// pending: the core asked the member to resign or take over and has not heard from it
	// since; origin is the member event that made it ask (named by originName).
	pending    unitRequest
	origin     Event
	originName string
}

// unitRequest is what the core last asked of a member.
type unitRequest uint8

const (
	requestNone unitRequest = iota
	requestResign
	requestTakeOver
)

// answers says whether member event e is what request r asked for.
func (r unitRequest) answers(e Event) bool {
	switch r {
	case requestResign:
		return e.From == StateMaster && e.To != StateMaster
	case requestTakeOver:
		return e.To == StateMaster
	}
	return false
}

func newUnitCore(names []string) *unitCore {
	return &unitCore{names: names, members: make([]unitMember, len(names))}
}

// faultCause tells the transitions that take a member out of the protocol for its
// interface.
func faultCause(c Cause) bool { return c == CauseInterfaceGone || c == CauseInterfaceDown }

// Member takes member i's transition e and returns what the other members must do, and the
// unit's role change if there is one, in that order. A transition that answers the core's own
// request (a resign or takeover it asked for) moves nobody else: the event that made the core
// ask already did, and re-asking from each answer would make members that fell back (a
// takeover preempted at once by the peer's Master) take over again, in a storm.
func (c *unitCore) Member(i int, e Event) []unitAction {
	m := &c.members[i]
	origin, originName := e, c.names[i]
	answered := m.pending.answers(e)
	if answered {
		origin, originName = m.origin, m.originName
	}
	m.pending = requestNone
	m.state = e.To
	m.fault = ""
	if e.To == StateInitialize && faultCause(e.Cause) {
		m.fault = e.Reason
	}
	var out []unitAction
	out = append(out, c.holdPassive()...)
	k := c.faulty(i)
	switch {
	case e.Cause == CauseShutdown:
	case e.To == StateMaster && k >= 0:
		m.pending, m.origin, m.originName = requestResign, c.faultEvent(k), c.names[k]
		out = append(out, unitResign{Member: i, Reason: fmt.Sprintf("unit: group %s is at fault (%s)", c.names[k], c.members[k].fault)})
	case answered:
	case e.From == StateMaster && e.To != StateMaster:
		out = append(out, c.all(i, StateMaster, requestResign, origin, originName, func(j int, why string) unitAction {
			return unitResign{Member: j, Reason: why}
		}, fmt.Sprintf("unit: group %s left master (%s)", c.names[i], e.Cause))...)
	case e.To == StateMaster:
		out = append(out, c.all(i, StateBackup, requestTakeOver, origin, originName, func(j int, why string) unitAction {
			return unitTakeOver{Member: j, Reason: why}
		}, fmt.Sprintf("unit: group %s became master (%s)", c.names[i], e.Cause))...)
	}
	if r, ok := c.roleChange(origin, originName, e); ok {
		out = append(out, r)
	}
	return out
}

// all returns the action made by mk for every member other than i that is in state and has
// no request pending, and marks them pending with req and the given origin.
func (c *unitCore) all(i int, state State, req unitRequest, origin Event, originName string, mk func(int, string) unitAction, why string) []unitAction {
	var out []unitAction
	for j := range c.members {
		o := &c.members[j]
		if j == i || o.state != state || o.pending != requestNone {
			continue
		}
		o.pending, o.origin, o.originName = req, origin, originName
		out = append(out, mk(j, why))
	}
	return out
}

// faulty returns a member other than i whose interface is at fault, or -1.
func (c *unitCore) faulty(i int) int {
	for j, o := range c.members {
		if j != i && o.fault != "" {
			return j
		}
	}
	return -1
}

// faultEvent is the origin named when a member is resigned for member k's fault.
func (c *unitCore) faultEvent(k int) Event {
	return Event{From: StateMaster, To: StateInitialize, Cause: CauseInterfaceDown, Reason: c.members[k].fault}
}

// holdPassive sets each member's passive mode to the operator's, or on while another member
// is at fault, and returns the changes.
func (c *unitCore) holdPassive() []unitAction {
	var out []unitAction
	for j := range c.members {
		want := c.passive || c.faulty(j) >= 0
		if want != c.members[j].passive {
			c.members[j].passive = want
			out = append(out, unitPassive{Member: j, On: want})
		}
	}
	return out
}

// SetPassive records the operator's Backup mode and returns every member's passive mode
// (all of them, so that the first call puts the whole unit in a known mode).
func (c *unitCore) SetPassive(on bool) []unitAction {
	c.passive = on
	c.holdPassive()
	out := make([]unitAction, len(c.members))
	for j, m := range c.members {
		out[j] = unitPassive{Member: j, On: m.passive}
	}
	return out
}

// aggregate is the unit's role from its members' states (see Unit.Status).
func (c *unitCore) aggregate() State {
	all := true
	for _, m := range c.members {
		if m.state == StateInitialize {
			return StateInitialize
		}
		all = all && m.state == StateMaster
	}
	if all {
		return StateMaster
	}
	return StateBackup
}

// roleChange returns the unit's role change after member event e, whose move started with
// origin (of the member named originName), if the role changed.
func (c *unitCore) roleChange(origin Event, originName string, e Event) (unitRole, bool) {
	to := c.aggregate()
	if to == c.role {
		return unitRole{}, false
	}
	r := unitRole{Event{From: c.role, To: to, Cause: origin.Cause, Reason: "group " + originName + ": " + origin.Reason, At: e.At, Err: e.Err}}
	c.role, c.since = to, e.At
	c.transitions++
	return r, true
}

// fault is the first member's fault, named, or "".
func (c *unitCore) fault() string {
	for j, m := range c.members {
		if m.fault != "" {
			return "group " + c.names[j] + ": " + m.fault
		}
	}
	return ""
}
