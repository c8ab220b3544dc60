// Package appliance is the glue of redundantd and the only place that knows the product's
// rules: which steps a role change runs and in what order, what the operator is told, and
// the HTTP API. It holds no protocol details: the VRRP engine, the berofos controller and the
// replication are libraries it drives and listens to.
package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	pbxsync "github.com/redundantd/redundantd/sync"
	"github.com/redundantd/redundantd/vrrp"
)

// Router is what the appliance needs of the VRRP engine (*vrrp.Router in production): its
// loop and status, and the operator's controls (Backup mode, swap, reload).
type Router interface {
	Run(ctx context.Context) error
	Status() vrrp.Status
	SetPassive(on bool)
	Resign(reason string)
	TakeOver(reason string)
	Reload(rc vrrp.RuntimeConfig) error
}

var _ Router = (*vrrp.Router)(nil)

// Part is a component of the node that follows the VRRP role: the berofos controller moves
// the lines, the replication changes direction. Follow must not block: the part applies the
// newest role in its own goroutine (its Run), so a hung device or peer never delays a
// takeover. Status is included in the API's status answer under Name.
type Part interface {
	Name() string
	Run(ctx context.Context) error
	Follow(role vrrp.State)
	Status() any
}

// Options carries the appliance's dependencies.
type Options struct {
	Logger *slog.Logger
	// DialVRRP opens the VRRP engine for the given configuration; production wraps
	// vrrp.Dial, tests pass vrrp.New with fakes.
	DialVRRP func(vrrp.Config) (Router, error)
	// Parts are run beside the VRRP engine and told every role change, in order, after the
	// engine has taken or released the virtual IPs. New adds the parts the configuration
	// asks for (berofos) after these.
	Parts []Part
	// Now stamps events; time.Now when nil.
	Now func() time.Time
	// EventLimits bounds the event log; DefaultEventLimits when zero.
	EventLimits EventLimits
	// APIListener serves the API when set (tests, socket activation); otherwise Run listens
	// on api.listen.
	APIListener net.Listener
	// PeerListener serves the peer link when set; otherwise Run listens on peer.listen.
	PeerListener net.Listener
	// SyncListener serves the replication when set; otherwise each sync part listens on
	// sync.listen. The parts a reload or a retry builds serve it in turn; Run closes it
	// when it returns.
	SyncListener net.Listener
	// SyncDial reaches the peer's sync port when set (a lab dialling inside a namespace);
	// otherwise the replication dials sync.peer.
	SyncDial func(ctx context.Context) (net.Conn, error)
	// AccessListener serves the Backup Device GUI Access Port when set; otherwise the part
	// listens on console.backup_access_port.
	AccessListener net.Listener
	// PartRetry is how long a part that could not start or stopped with an error (the
	// replication on a full disk) waits before it is built again; 30s when zero.
	PartRetry time.Duration
}

// Appliance is one redundantd node.
type Appliance struct {
	cfg      *Config
	log      *slog.Logger
	now      func() time.Time
	router   Router // nil when redundancy is disabled
	parts    []Part
	apiLn    net.Listener
	peerLn   net.Listener
	syncLn   *sharedListener                             // Options.SyncListener, nil when sync.listen is opened by each part
	syncDial func(ctx context.Context) (net.Conn, error) // Options.SyncDial
	ready    chan struct{}                               // closed by Run once the API serves and the parts run (Ready)
	berofos  *berofosPart                                // nil when no berofos is configured
	peer     *PeerLink                                   // nil when the peer link is off
	sync     *syncPart                                   // nil when replication is off
	services *ServiceManager                             // nil when no service or notify command is configured
	events   *eventStore
	roles    chan vrrp.Event // capacity 1: the newest role change replaces an unread one
	started  time.Time

	healthMu  sync.Mutex
	unhealthy string // why the services are unhealthy; "" when healthy

	partsMu   sync.Mutex
	running   map[Part]runningPart // parts started by Run, for a reload to stop
	live      *Config              // the configuration last applied (LoadConfig, then reloads)
	partRetry time.Duration
	syncDown  string // why the replication is not running although enabled; "" when it runs
	reloadMu  sync.Mutex

	// startActive: the start-up rule of startPassive is in force (this node was Master when
	// it stopped and the group is Passive): the node runs Active until it is Master again,
	// hears of another Master, or the mode is set (endStartRule).
	startActive atomic.Bool

	failMu   sync.Mutex
	failover failoverWatch // the peer link's fast takeover and hold (fastfail.go)

	leftMu     sync.Mutex
	leftMaster *RoleChange // the last time the node left Master (the API's left_master)

	stMu     sync.Mutex
	state    nodeState // Backup mode and last role, kept in state_dir
	stateErr string    // why state_dir refused it; "" when saved
	pokes    chan struct{}

	swapMu     sync.Mutex
	swapping   bool
	swapCancel context.CancelFunc
	lastSwap   *SwapResult
	guard      apiGuard
	console    *console // nil when [console] is off

	metrics  *metrics
	notifier *Notifier    // nil when no [[notify]] channel is configured
	vrrpIfi  int          // the interface's index, for the SNMP traps
	mutating *tokenBucket // rate of API requests that change something
	apiConns *connLimiter // set by Run
	syncRuns coalescer[pbxsync.RunStats]
	runCtx   context.Context // Run's context, for work the API starts on the node's behalf
}

// New builds the node and opens its VRRP engine (when redundancy is enabled). It starts no
// goroutines; Run does.
func New(cfg *Config, opts Options) (*Appliance, error) {
	a := &Appliance{
		cfg:       cfg,
		log:       opts.Logger,
		now:       opts.Now,
		parts:     opts.Parts,
		apiLn:     opts.APIListener,
		peerLn:    opts.PeerListener,
		syncDial:  opts.SyncDial,
		ready:     make(chan struct{}),
		roles:     make(chan vrrp.Event, 1),
		pokes:     make(chan struct{}, 1),
		live:      cfg,
		partRetry: opts.PartRetry,
		running:   map[Part]runningPart{},

		mutating: newTokenBucket(apiMutatingRate, apiMutatingBurst),
		runCtx:   context.Background(),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.partRetry <= 0 {
		a.partRetry = 30 * time.Second
	}
	if opts.SyncListener != nil {
		a.syncLn = newSharedListener(opts.SyncListener)
	}
	a.metrics = newMetrics(a)
	if len(cfg.Notify) > 0 {
		n, err := NewNotifier(cfg.Notify, a.log.With("part", "notify"))
		if err != nil {
			return nil, err
		}
		a.notifier = n
		if ifi, err := net.InterfaceByName(cfg.Node.Interface); err == nil {
			a.vrrpIfi = ifi.Index
		}
	}
	limits := opts.EventLimits
	if limits.Count == 0 {
		limits = DefaultEventLimits
	}
	a.events = openEventStore(cfg.Node.StateDir, limits, a.log.With("part", "events"), a.now)
	def := nodeState{Mode: modeRecord{Mode: cfg.Redundancy.BackupMode}}
	st, err := loadNodeState(cfg.Node.StateDir, def)
	if err != nil {
		a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "state not loaded",
			Description: fmt.Sprintf("starting with the configured backup mode %s: %v", def.Mode.Mode, err)})
	}
	a.state = st
	tok, err := LoadOrCreateToken(cfg.API.TokenFile)
	if err != nil {
		a.record(Event{Priority: PriorityWarning, Application: AppRedundancy, Name: "api token",
			Description: fmt.Sprintf("no API token, so every change through the API is refused: %v", err)})
	}
	a.guard = newAPIGuard(cfg.API.Listen, tok, cfg.API.Names)
	if cfg.Console.Enabled {
		c, err := newConsole(a, cfg.Console)
		if err != nil {
			return nil, err
		}
		a.console = c
	}
	if listen := cfg.Console.backupAccessListen(cfg.API.Listen); listen != "" && cfg.Redundancy.Enabled {
		a.parts = append(a.parts, newAccessPart(listen, cfg.Console.BackupConsole, opts.AccessListener, a.partRetry, a.log.With("part", "access")))
	}
	if err := a.addParts(cfg); err != nil {
		return nil, err
	}
	if !cfg.Redundancy.Enabled {
		return a, nil
	}
	if opts.DialVRRP == nil {
		return nil, errors.New("appliance: no VRRP engine (Options.DialVRRP is nil)")
	}
	if cfg.Peer.Enabled {
		link, err := a.newPeerLink()
		if err != nil {
			return nil, err
		}
		a.peer = link
	}
	r, err := a.dialVRRP(opts.DialVRRP)
	if err != nil {
		return nil, fmt.Errorf("open VRRP on %s: %w", cfg.Node.Interface, err)
	}
	a.router = r
	// Before Run: a Passive Backup must not take over in its first Master_Down_Interval.
	passive := startPassive(a.state.Mode.Mode, a.state.LastRole)
	a.startActive.Store(!passive && a.state.Mode.Mode == ModePassive)
	r.SetPassive(passive)
	return a, nil
}

// addParts adds the berofos, the service manager and the replication to the node's parts, as
// the configuration enables them. Only a part that cannot be built from a checked
// configuration is an error; the replication's disk problems are retried by Run.
func (a *Appliance) addParts(cfg *Config) error {
	if cfg.Berofos.Enabled {
		p, err := newBerofosPart(cfg.Berofos, a.log.With("part", "berofos"), a.record)
		if err != nil {
			return err
		}
		a.berofos = p
		a.parts = append(a.parts, p)
	}
	if len(cfg.Services) > 0 || len(cfg.Redundancy.Notify) > 0 {
		sm, err := NewServiceManager(ServiceManagerConfig{
			Services:       cfg.Services,
			Notify:         cfg.Redundancy.Notify,
			NotifyInstance: fmt.Sprintf("VI_%d", cfg.Redundancy.GroupID),
			Priority:       int(cfg.Redundancy.Priority),
			OnHealth:       a.onServiceHealth,
			Logger:         a.log.With("part", "services"),
		}, a.record)
		if err != nil {
			return err
		}
		a.services = sm
		a.parts = append(a.parts, sm)
	}
	if cfg.Sync.Enabled {
		// The configuration was checked by LoadConfig: what fails here is the disk (a full or
		// read-only state_dir). VRRP and the PBX must run without it; Run retries.
		p, err := a.newSyncPart(cfg)
		if err != nil {
			a.syncDown = err.Error()
			a.record(Event{Priority: PriorityWarning, Application: AppSync, Name: "not started",
				Description: fmt.Sprintf("replication not started, retrying every %s: %v", a.partRetry, err)})
		} else {
			a.sync = p
			a.parts = append(a.parts, p)
		}
	}
	return nil
}

// endStartRule ends the start-up rule of startPassive: the group's mode applies to the engine.
func (a *Appliance) endStartRule() {
	a.startActive.Store(false)
	a.router.SetPassive(a.mode().Mode == ModePassive)
}

// vrrpConfig translates the operator's settings into the engine's.
func (a *Appliance) vrrpConfig() vrrp.Config {
	rc := a.cfg.Redundancy
	c := vrrp.Config{
		Interface:      a.cfg.Node.Interface,
		Version:        rc.Version,
		VRID:           rc.GroupID,
		Priority:       rc.Priority,
		AdvertInterval: rc.AdvertInterval,
		Preempt:        rc.Preempt,
		Primary:        a.cfg.Node.Address,
		VirtualIPs:     rc.VirtualIPs,
		Unicast:        rc.Unicast,
		VirtualMAC:     rc.VirtualMAC,
		GARPCount:      rc.GARPCount,
		GARPInterval:   rc.GARPInterval,
		GARPRefresh:    rc.GARPRefresh,
		NARouter:       rc.NARouter,
		StateDir:       a.cfg.Node.StateDir,
		Logger:         a.log.With("part", "vrrp"),
		OnEvent:        a.onVRRPEvent,
		OnHeld:         a.onHeld,
	}
	if rc.Unicast {
		c.Peers = []netip.Addr{rc.Peer}
	}
	if c.IPv6() {
		// node.address is IPv4; an IPv6 group advertises from the interface's link-local
		// address, which the engine finds (RFC 9568 section 5.1.2.1).
		c.Primary = netip.Addr{}
	}
	return c
}

// onVRRPEvent runs on the VRRP engine's goroutine: it records the event and hands the role
// to the transition worker without blocking.
func (a *Appliance) onVRRPEvent(e vrrp.Event) {
	a.metrics.countTransition(e)
	if e.From == vrrp.StateMaster && e.To != vrrp.StateMaster {
		a.leftMu.Lock()
		a.leftMaster = &RoleChange{At: e.At, From: e.From.String(), To: e.To.String(), Cause: e.Cause.String(), Reason: e.Reason}
		a.leftMu.Unlock()
	}
	ev := a.recordOnly(transitionEvent(e))
	if e.To == vrrp.StateMaster {
		a.notifier.NotifyVRRP(ev, VRRPDetail{IfIndex: a.vrrpIfi, VRID: a.cfg.Redundancy.GroupID,
			MasterAddr: e.MasterIP, Reason: NewMasterReasonOf(e.Reason)})
	} else {
		a.notifier.Notify(ev)
	}
	if e.Err != nil {
		a.record(Event{Time: e.At, Priority: PriorityWarning, Application: AppRedundancy, Name: "addresses",
			Description: fmt.Sprintf("virtual IPs not in the wanted state after %s -> %s (retrying every advert interval): %v", e.From, e.To, e.Err)})
	}
	for {
		select {
		case a.roles <- e:
			return
		default:
		}
		// Newest wins: drop the role change the worker has not picked up yet.
		select {
		case <-a.roles:
		default:
		}
	}
}

// transitionEvent describes a role change for the operator: "became master" with the reason
// and the Master heard, at notice priority when this node takes or leaves the Master role.
func transitionEvent(e vrrp.Event) Event {
	prio := PriorityInfo
	switch {
	case e.Cause == vrrp.CauseInterfaceGone || e.Cause == vrrp.CauseInterfaceDown:
		prio = PriorityWarning // out of the protocol until the link is back
	case e.To == vrrp.StateMaster || e.From == vrrp.StateMaster:
		prio = PriorityNotice
	}
	msg := fmt.Sprintf("%s -> %s: %s", e.From, e.To, e.Reason)
	if e.MasterIP.IsValid() {
		msg += fmt.Sprintf(" (master %s)", e.MasterIP)
	}
	return Event{Time: e.At, Priority: prio, Application: AppRedundancy, Name: "became " + e.To.String(), Description: msg}
}

// record stamps, stores, logs and notifies an event. It never waits for the disk or a
// receiver.
func (a *Appliance) record(e Event) Event {
	e = a.recordOnly(e)
	a.notifier.Notify(e)
	return e
}

// recordOnly is record without the notification (the caller sends a richer one).
func (a *Appliance) recordOnly(e Event) Event {
	if e.Time.IsZero() {
		e.Time = a.now()
	}
	e = a.events.add(e)
	level := slog.LevelInfo
	if e.Priority >= PriorityWarning {
		level = slog.LevelWarn
	}
	a.log.Log(context.Background(), level, e.Description, "application", e.Application, "event", e.Name, "seq", e.Seq)
	return e
}

// Run runs the node until ctx is cancelled. On cancellation a Master resigns (priority-0
// advert, addresses released) before Run returns.
func (a *Appliance) Run(ctx context.Context) error {
	a.started = a.now()
	ln, err := a.apiLn, error(nil)
	if ln == nil {
		ln, err = net.Listen("tcp", a.cfg.API.Listen)
	}
	if err != nil {
		if c, ok := a.router.(io.Closer); ok {
			c.Close()
		}
		return fmt.Errorf("api: listen on %s: %w", a.cfg.API.Listen, err)
	}
	if a.cfg.Console.TLS() {
		tc, err := consoleTLS(a.cfg.Console)
		if err != nil {
			ln.Close()
			if c, ok := a.router.(io.Closer); ok {
				c.Close()
			}
			return fmt.Errorf("api: console.tls_cert: %w", err)
		}
		ln = tls.NewListener(ln, tc)
	}
	a.runCtx = ctx
	srv, lln := newAPIServer(withConsole(a.guard.wrap(a.Handler()), a.console), ln)
	a.apiConns = lln
	apiErr := make(chan error, 1)
	go func() { apiErr <- srv.Serve(lln) }()
	a.record(Event{Priority: PriorityInfo, Application: AppRedundancy, Name: "start",
		Description: fmt.Sprintf("node %s started (redundancy enabled: %t)", a.cfg.Node.ID, a.cfg.Redundancy.Enabled)})

	var wg sync.WaitGroup
	wg.Go(func() { a.events.run(ctx) })
	wg.Go(func() { a.follow(ctx) })
	wg.Go(func() { a.control(ctx) })
	if a.notifier != nil {
		wg.Go(func() { _ = a.notifier.Run(ctx) })
	}
	if a.peer != nil {
		wg.Go(func() { a.runPeer(ctx) })
	}
	for _, p := range a.partList() {
		a.startPart(ctx, p)
	}
	if a.syncDown != "" {
		go a.retryPart(ctx, nil)
	}
	close(a.ready)

	if a.router == nil && a.services != nil {
		// Without redundancy this node is the PBX: its services run.
		a.services.Follow(vrrp.StateMaster)
	}
	var runErr error
	if a.router != nil {
		runErr = a.router.Run(ctx)
		if runErr != nil && ctx.Err() == nil {
			runErr = fmt.Errorf("vrrp: %w", runErr)
		}
	} else {
		<-ctx.Done()
	}
	wg.Wait()
	a.waitParts()
	if a.syncLn != nil {
		a.syncLn.close()
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err := <-apiErr; err != nil && !errors.Is(err, http.ErrServerClosed) && runErr == nil {
		runErr = fmt.Errorf("api: %w", err)
	}
	a.record(Event{Priority: PriorityInfo, Application: AppRedundancy, Name: "stop", Description: "node stopped"})
	a.events.flush()
	return runErr
}

// Ready returns a channel Run closes once the API serves its listener and the parts
// (replication, berofos, services) have been started; the replication's own port is served
// once SyncReady is closed too.
func (a *Appliance) Ready() <-chan struct{} { return a.ready }

// SyncReady returns a channel closed once the replication serves its port; nil when the
// replication is off or not running (a full state_dir: it is retried).
func (a *Appliance) SyncReady() <-chan struct{} {
	if p := a.syncPart(); p != nil {
		return p.Ready()
	}
	return nil
}

// newSyncPart builds the replication part for cfg, on the caller's listener when there is
// one.
func (a *Appliance) newSyncPart(cfg *Config) (*syncPart, error) {
	return newSyncPart(cfg, a.log.With("part", "sync"), a.record, a.syncLn, a.syncDial)
}

// onServiceHealth receives the services' verdict (from the service manager's goroutine).
func (a *Appliance) onServiceHealth(healthy bool, reason string) {
	a.healthMu.Lock()
	if healthy {
		a.unhealthy = ""
	} else {
		a.unhealthy = reason
	}
	a.healthMu.Unlock()
}

// health returns why this node's services are unhealthy, "" when they are healthy.
func (a *Appliance) health() string {
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	return a.unhealthy
}

// syncNow replicates now, sharing the run with concurrent callers (see coalescer).
func (a *Appliance) syncNow(ctx context.Context) (pbxsync.RunStats, error) {
	return a.syncRuns.do(ctx, func() (pbxsync.RunStats, error) {
		sp := a.syncPart()
		if sp == nil {
			return pbxsync.RunStats{}, errors.New("replication is not enabled")
		}
		return sp.SyncNow(a.runCtx)
	})
}

// follow delivers role changes to the followers one at a time, newest first.
func (a *Appliance) follow(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-a.roles:
			for _, p := range a.partList() {
				p.Follow(e.To)
			}
			a.noteRole(e.To)
			// A role ends the start-up rule (startPassive) and the mode applies; except the
			// Backup role every node starts in: a node that was Master (with the newest data)
			// stays Active until it is Master again or knows another Master (control), so that
			// it takes the role back when the peer is a Passive Backup.
			startBackup := e.To == vrrp.StateBackup && e.Cause == vrrp.CauseStart && a.startActive.Load()
			if (e.To == vrrp.StateMaster || e.To == vrrp.StateBackup) && !startBackup {
				a.endStartRule()
			}
			if a.peer != nil {
				a.peer.Changed()
			}
			a.poke()
		}
	}
}
