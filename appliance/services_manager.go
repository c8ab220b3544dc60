package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redundantd/redundantd/vrrp"
)

// DefaultNotifyTimeout bounds one run of the notify command.
const DefaultNotifyTimeout = 30 * time.Second

// notifyQueue is how many notifications may wait behind a slow notify command; beyond that
// the oldest waiting one is dropped (with an event), since the newest state matters most.
const notifyQueue = 8

var (
	// ErrNoDrainCheck: Draining was asked but no service has a drain_check.
	ErrNoDrainCheck = errors.New("no service has a drain_check")
	// ErrDrainCheck wraps a drain_check that failed, timed out or answered neither 0 nor 1.
	ErrDrainCheck = errors.New("drain check failed")
)

// ServiceManagerConfig configures a ServiceManager.
type ServiceManagerConfig struct {
	Services []ServiceConfig // validated (validateServices); programs are resolved by New
	// Notify is the keepalived-style notify command; it is run after each applied role with
	// the arguments INSTANCE <NotifyInstance> MASTER|BACKUP|FAULT <Priority> appended.
	Notify         []string
	NotifyInstance string // default "redundantd"
	Priority       int
	NotifyTimeout  time.Duration // default DefaultNotifyTimeout
	// OnHealth is called, from the manager's goroutine, each time the node's verdict over
	// its services changes: healthy false with a reason such as "service asterisk failed",
	// or true when every service is healthy again. It must not block.
	OnHealth func(healthy bool, reason string)
	Logger   *slog.Logger
}

// ServiceStatus is one service in the status answer.
type ServiceStatus struct {
	Name  string       `json:"name"`
	State ServiceState `json:"state"` // unknown, stopped, starting, running, stopping, failed
	// LastCommand is the kind of the last command run for the service: start, stop or check.
	LastCommand string `json:"last_command,omitempty"`
	// LastExit is that command's exit status; -1 when it could not run or was killed; null
	// before any command ran.
	LastExit       *int   `json:"last_exit"`
	LastError      string `json:"last_error,omitempty"`
	LastOutputTail string `json:"last_output_tail"`
	Healthy        bool   `json:"healthy"`
	Reason         string `json:"reason,omitempty"` // why not healthy
	// ConsecutiveFailures counts the failed checks in a row (while Master).
	ConsecutiveFailures int `json:"consecutive_failures"`
}

// managedService is a configured service with its programs resolved.
type managedService struct {
	cfg                     ServiceConfig
	start, stop, check, dra []string
}

// lastRun is the last command run for a service, for the status.
type lastRun struct {
	kind string
	res  cmdResult
	set  bool
}

type stepResult struct {
	st  step
	res cmdResult
}

type checkResult struct {
	svc   int
	token uint64
	res   cmdResult
}

// ServiceManager makes the PBX follow the VRRP role: it starts the configured services in
// order on becoming Master and stops them in reverse order otherwise, one command at a
// time, each acknowledged before the next, the newest role superseding a pending one (the
// sequencer). While Master it runs each service's check and keeps a health verdict (the
// health trackers), reported through OnHealth so that the appliance can give the Master role
// up. Every command runs with a timeout in its own process group; its exit status and the
// tail of its output become an event. Follow never blocks: a hung command delays only the
// services' own next step, never the addresses or the berofos lines.
//
// When Run's context ends, the services are stopped (in reverse order, each with its
// timeout) before Run returns: a node whose daemon stops must not leave a PBX running
// beside the new Master. No notification is sent for that last step.
type ServiceManager struct {
	log      *slog.Logger
	record   func(Event) Event
	svcs     []managedService
	notify   []string
	instance string
	priority int
	nTimeout time.Duration
	onHealth func(bool, string)

	wake    chan struct{} // capacity 1: Follow's "a new role is waiting"
	notifyQ chan vrrp.State

	mu       sync.Mutex
	want     vrrp.State
	hasWant  bool
	seq      *sequencer
	trackers []*healthTracker
	last     []lastRun
	healthy  bool
	reason   string
}

var _ Part = (*ServiceManager)(nil)

// NewServiceManager builds the manager. It resolves every program (an absolute path must be
// executable, a bare name must be found in PATH) so that a missing command is a start-up
// error naming its key, not a surprise at failover. record receives every event.
func NewServiceManager(cfg ServiceManagerConfig, record func(Event) Event) (*ServiceManager, error) {
	m := &ServiceManager{
		log:      cfg.Logger,
		record:   record,
		instance: cfg.NotifyInstance,
		priority: cfg.Priority,
		nTimeout: cfg.NotifyTimeout,
		onHealth: cfg.OnHealth,
		wake:     make(chan struct{}, 1),
		notifyQ:  make(chan vrrp.State, notifyQueue),
		seq:      newSequencer(len(cfg.Services)),
		last:     make([]lastRun, len(cfg.Services)),
		healthy:  true,
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.record == nil {
		m.record = func(e Event) Event { return e }
	}
	if m.instance == "" {
		m.instance = "redundantd"
	}
	if m.nTimeout <= 0 {
		m.nTimeout = DefaultNotifyTimeout
	}
	var errs []error
	resolve := func(key string, argv []string) []string {
		out, err := resolveProgram(key, argv)
		if err != nil {
			errs = append(errs, err)
		}
		return out
	}
	m.notify = resolve("redundancy.notify", cfg.Notify)
	for i, c := range cfg.Services {
		key := func(k string) string { return fmt.Sprintf("service[%d].%s", i, k) }
		c = withServiceDefaults(c)
		ms := managedService{cfg: c,
			start: resolve(key("start"), c.Start), stop: resolve(key("stop"), c.Stop),
			check: resolve(key("check"), c.Check), dra: resolve(key("drain_check"), c.DrainCheck)}
		if len(c.Start) == 0 || len(c.Stop) == 0 {
			errs = append(errs, &ConfigError{Key: key("start"), Problem: "start and stop are required"})
		}
		m.svcs = append(m.svcs, ms)
		m.trackers = append(m.trackers, newHealthTracker(len(c.Check) > 0, c.CheckInterval, c.Fall, c.Rise))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return m, nil
}

// withServiceDefaults fills what a ServiceConfig built by hand (not by validateServices)
// may leave zero.
func withServiceDefaults(c ServiceConfig) ServiceConfig {
	if c.Timeout <= 0 {
		c.Timeout = DefaultServiceTimeout
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.Fall <= 0 {
		c.Fall = DefaultServiceFall
	}
	if c.Rise <= 0 {
		c.Rise = DefaultServiceRise
	}
	return c
}

// Name is the part's key in the status answer.
func (m *ServiceManager) Name() string { return "services" }

// Follow hands the newest role to Run without blocking; a role not yet picked up is
// replaced.
func (m *ServiceManager) Follow(role vrrp.State) {
	m.mu.Lock()
	m.want, m.hasWant = role, true
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Healthy is the node's verdict over its services, with the reason when unhealthy.
func (m *ServiceManager) Healthy() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.healthy, m.reason
}

// Status returns a []ServiceStatus, in configuration order.
func (m *ServiceManager) Status() any {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ServiceStatus, len(m.svcs))
	for i, s := range m.svcs {
		ok, why := m.trackers[i].Healthy()
		st := ServiceStatus{Name: s.cfg.Name, State: m.seq.State(i), Healthy: ok, Reason: why,
			ConsecutiveFailures: m.trackers[i].Failures()}
		if l := m.last[i]; l.set {
			exit := l.res.Exit
			st.LastCommand, st.LastExit, st.LastOutputTail = l.kind, &exit, l.res.Output
			if l.res.Err != nil {
				st.LastError = l.res.Err.Error()
			}
		}
		out[i] = st
	}
	return out
}

// Run applies roles and runs checks until ctx ends, then stops the services and returns.
func (m *ServiceManager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	done := make(chan struct{})
	stepDone := make(chan stepResult, 1) // one step in flight at most
	checkDone := make(chan checkResult)
	wg.Go(func() { m.runNotify(ctx) })

	launchStep := func(st step) {
		wg.Go(func() { stepDone <- stepResult{st, m.runStep(ctx, st)} })
	}
	launchCheck := func(i int, token uint64) {
		wg.Go(func() {
			r := m.runCheck(ctx, i)
			select {
			case checkDone <- checkResult{i, token, r}:
			case <-done:
			}
		})
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := m.startDueChecks(time.Now(), launchCheck)
		resetTimer(timer, next)
		select {
		case <-ctx.Done():
			close(done)
			m.shutdown(stepDone)
			wg.Wait()
			return nil
		case <-m.wake:
			m.mu.Lock()
			role, has := m.want, m.hasWant
			m.mu.Unlock()
			if has {
				m.after(m.seqCall(func() seqNext { return m.seq.Follow(role) }), launchStep)
			}
		case r := <-stepDone:
			m.after(m.finishStep(r), launchStep)
		case r := <-checkDone:
			m.finishCheck(r)
		case <-timer.C:
		}
	}
}

// resetTimer sets t to fire at next, or practically never when next is zero.
func resetTimer(t *time.Timer, next time.Time) {
	d := time.Hour
	if !next.IsZero() {
		d = max(time.Until(next), 0)
	}
	t.Reset(d)
}

// seqCall runs a sequencer call under the lock and brings the health trackers in line with
// the result.
func (m *ServiceManager) seqCall(f func() seqNext) seqNext {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := f()
	m.syncTrackers(time.Now())
	return n
}

// syncTrackers checks exactly the services that run while the newest role is Master.
// Called with m.mu held.
func (m *ServiceManager) syncTrackers(now time.Time) {
	master := m.seq.hasRole && m.seq.role == vrrp.StateMaster
	for i, h := range m.trackers {
		if master && m.seq.State(i) == ServiceRunning {
			h.Activate(now)
		} else {
			h.Deactivate()
		}
	}
}

// after acts on what the sequencer said: run the next step, or notify the applied role.
func (m *ServiceManager) after(n seqNext, launch func(step)) {
	switch {
	case n.Run:
		launch(n.Step)
	case n.Applied:
		m.log.Info("services follow the role", "role", n.Role, "failed", len(n.Failed))
		m.queueNotify(n.Role)
	}
}

// runStep runs one start or stop command.
func (m *ServiceManager) runStep(ctx context.Context, st step) cmdResult {
	s := m.svcs[st.Service]
	argv := s.start
	if st.Op == opStop {
		argv = s.stop
	}
	return runCommand(ctx, argv, s.cfg.Timeout, serviceEnv(s.cfg.Name, st.Op.String()))
}

func (m *ServiceManager) runCheck(ctx context.Context, i int) cmdResult {
	s := m.svcs[i]
	return runCommand(ctx, s.check, min(s.cfg.Timeout, s.cfg.CheckInterval), serviceEnv(s.cfg.Name, "check"))
}

// serviceEnv tells a script which service and which action it runs for.
func serviceEnv(name, action string) []string {
	return []string{"REDUNDANTD_SERVICE=" + name, "REDUNDANTD_ACTION=" + action}
}

// finishStep records a step's outcome (event, status, health) and acknowledges it.
func (m *ServiceManager) finishStep(r stepResult) seqNext {
	s := m.svcs[r.st.Service]
	ok := r.res.Err == nil
	cmdline := strings.Join(s.cfg.Start, " ")
	if r.st.Op == opStop {
		cmdline = strings.Join(s.cfg.Stop, " ")
	}
	ev := Event{Priority: PriorityInfo, Application: AppService}
	switch {
	case r.st.Op == opStart && ok:
		ev.Name = "started"
		ev.Description = fmt.Sprintf("service %s started (%s: %s)", s.cfg.Name, cmdline, r.res.describe())
	case r.st.Op == opStart:
		ev.Priority, ev.Name = PriorityWarning, "start-failed"
		ev.Description = fmt.Sprintf("service %s failed to start (%s: %s)", s.cfg.Name, cmdline, r.res.describe())
	case ok:
		ev.Name = "stopped"
		ev.Description = fmt.Sprintf("service %s stopped (%s: %s)", s.cfg.Name, cmdline, r.res.describe())
	default:
		ev.Priority, ev.Name = PriorityWarning, "stop-failed"
		ev.Description = fmt.Sprintf("service %s failed to stop, it may still be running (%s: %s)", s.cfg.Name, cmdline, r.res.describe())
	}
	if r.res.Output != "" && (!ok || r.st.Op == opStart) {
		ev.Description += "\n" + r.res.Output
	}

	// The status changes before the event is recorded, so whoever reads the event sees it.
	m.mu.Lock()
	m.last[r.st.Service] = lastRun{kind: r.st.Op.String(), res: r.res, set: true}
	var change healthChange
	// A start killed because the daemon is stopping says nothing about the service.
	if r.st.Op == opStart && !errors.Is(r.res.Err, context.Canceled) {
		change = m.trackers[r.st.Service].Started(ok, s.cfg.Name)
	}
	n := m.seq.Done(r.st, ok)
	m.syncTrackers(time.Now())
	m.mu.Unlock()
	m.record(ev)
	m.healthEvent(r.st.Service, change, r.res)
	return n
}

// startDueChecks launches the checks that are due and returns when the next one is.
func (m *ServiceManager) startDueChecks(now time.Time, launch func(int, uint64)) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	for i, h := range m.trackers {
		if token, due := h.Due(now); due {
			launch(i, token)
		}
		if d := h.Deadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}

// finishCheck records a check's outcome.
func (m *ServiceManager) finishCheck(r checkResult) {
	s := m.svcs[r.svc]
	ok := r.res.Err == nil
	m.mu.Lock()
	h := m.trackers[r.svc]
	if h.token != r.token || !h.inFlight {
		m.mu.Unlock()
		return // a check of an earlier Master period
	}
	change := h.Result(time.Now(), r.token, ok, s.cfg.Name)
	fails := h.Failures()
	m.last[r.svc] = lastRun{kind: "check", res: r.res, set: true}
	m.mu.Unlock()
	// Failed checks are reported until the verdict falls; after that the status counts them,
	// so a dead PBX on a node that cannot hand over does not flood the event log.
	if !ok && fails <= s.cfg.Fall {
		msg := fmt.Sprintf("service %s: check failed (%d of %d) (%s: %s)", s.cfg.Name, fails, s.cfg.Fall,
			strings.Join(s.cfg.Check, " "), r.res.describe())
		if r.res.Output != "" {
			msg += "\n" + r.res.Output
		}
		m.record(Event{Priority: PriorityNotice, Application: AppService, Name: "check-failed", Description: msg})
	}
	m.healthEvent(r.svc, change, r.res)
}

// healthEvent reports a service's verdict change and, when the node's verdict changes with
// it, calls OnHealth. The node's verdict is updated before the event is recorded.
func (m *ServiceManager) healthEvent(i int, change healthChange, res cmdResult) {
	if change == healthSame {
		return
	}
	s := m.svcs[i].cfg
	m.mu.Lock()
	_, svcWhy := m.trackers[i].Healthy()
	ok, why := verdict(m.trackers)
	changed := ok != m.healthy || why != m.reason
	m.healthy, m.reason = ok, why
	m.mu.Unlock()
	switch change {
	case healthBecameUnhealthy:
		m.record(Event{Priority: PriorityWarning, Application: AppService, Name: "unhealthy",
			Description: fmt.Sprintf("unhealthy: %s (%s)", svcWhy, res.describe())})
	case healthBecameHealthy:
		what := fmt.Sprintf("%d checks in a row passed", s.Rise)
		if len(s.Check) == 0 {
			what = "started"
		}
		m.record(Event{Priority: PriorityInfo, Application: AppService, Name: "healthy",
			Description: fmt.Sprintf("service %s is healthy again (%s)", s.Name, what)})
	}
	if changed && m.onHealth != nil {
		m.onHealth(ok, why)
	}
}

// shutdown waits for the step in flight (killed with Run's context), then stops every
// service that may run, in reverse order, each with its own timeout. A manager that was
// never given a role has run nothing and touches nothing.
func (m *ServiceManager) shutdown(stepDone chan stepResult) {
	m.mu.Lock()
	inFlight, hasRole := m.seq.inFlight, m.seq.hasRole
	m.mu.Unlock()
	if !hasRole {
		return
	}
	n := m.seqCall(func() seqNext { return m.seq.Follow(vrrp.StateInitialize) })
	if inFlight {
		n = m.finishStep(<-stepDone)
	}
	for n.Run {
		n = m.finishStep(stepResult{n.Step, m.runStep(context.Background(), n.Step)})
	}
}

// queueNotify hands a state to the notify worker without waiting; when the queue is full
// the oldest waiting state is dropped.
func (m *ServiceManager) queueNotify(role vrrp.State) {
	if len(m.notify) == 0 {
		return
	}
	for {
		select {
		case m.notifyQ <- role:
			return
		default:
		}
		select {
		case old := <-m.notifyQ:
			m.record(Event{Priority: PriorityNotice, Application: AppService, Name: "notify-failed",
				Description: fmt.Sprintf("notify %s not run: %d newer notifications waited behind a slow notify command", notifyState(old), notifyQueue)})
		default:
		}
	}
}

// runNotify runs the notify command for each applied role, in order, one at a time, until
// ctx ends.
func (m *ServiceManager) runNotify(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case role := <-m.notifyQ:
			state := notifyState(role)
			argv := append(append([]string(nil), m.notify...), "INSTANCE", m.instance, state, strconv.Itoa(m.priority))
			res := runCommand(ctx, argv, m.nTimeout, nil)
			if res.Err != nil && ctx.Err() == nil {
				msg := fmt.Sprintf("notify %s failed (%s: %s)", state, strings.Join(argv, " "), res.describe())
				if res.Output != "" {
					msg += "\n" + res.Output
				}
				m.record(Event{Priority: PriorityNotice, Application: AppService, Name: "notify-failed", Description: msg})
			}
		}
	}
}

// notifyState is keepalived's name of a state in notify arguments. Initialize (the engine is
// not participating) is reported as FAULT.
func notifyState(s vrrp.State) string {
	switch s {
	case vrrp.StateMaster:
		return "MASTER"
	case vrrp.StateBackup:
		return "BACKUP"
	}
	return "FAULT"
}

// Draining runs every configured drain_check and returns the number of calls in progress:
// a drain_check exits 0 when no call is in progress and 1 when some are; with exit 1 the
// first number it prints, if any, is the count (else 1 is counted). Any other outcome is
// an error wrapping ErrDrainCheck. With no drain_check configured it returns
// ErrNoDrainCheck. It may be called from any goroutine.
func (m *ServiceManager) Draining(ctx context.Context) (calls int, err error) {
	ran := false
	var errs []error
	for _, s := range m.svcs {
		if len(s.dra) == 0 {
			continue
		}
		ran = true
		res := runCommand(ctx, s.dra, s.cfg.Timeout, serviceEnv(s.cfg.Name, "drain_check"))
		switch {
		case res.Exit == 0:
		case res.Exit == 1:
			calls += max(firstNumber(res.Output), 1)
		default:
			errs = append(errs, fmt.Errorf("%w: service %s (%s): %s", ErrDrainCheck, s.cfg.Name,
				strings.Join(s.cfg.DrainCheck, " "), res.describe()))
		}
	}
	if !ran {
		return 0, ErrNoDrainCheck
	}
	return calls, errors.Join(errs...)
}

// firstNumber is the first whole number among the words of s, 0 when there is none.
func firstNumber(s string) int {
	for _, w := range strings.Fields(s) {
		if n, err := strconv.Atoi(w); err == nil && n >= 0 {
			return n
		}
	}
	return 0
}

// Applied reports whether role is the newest role given and every service has been brought
// to it (started or stopped, or failed trying). A swap waits on it before handing over.
func (m *ServiceManager) Applied(role vrrp.State) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hasWant && m.want == role && m.seq.hasRole && m.seq.role == role && m.seq.Settled()
}
