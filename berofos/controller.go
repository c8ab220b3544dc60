package berofos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Desired is where the appliance wants the ISDN lines.
type Desired int

// The desired states. LinesUnknown asserts nothing: the controller only watches.
const (
	LinesUnknown Desired = iota
	LinesToMe
	LinesToPeer
)

// MarshalText encodes d as its name, for JSON and logs.
func (d Desired) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d Desired) String() string {
	switch d {
	case LinesUnknown:
		return "unknown"
	case LinesToMe:
		return "to-me"
	case LinesToPeer:
		return "to-peer"
	}
	return "Desired(" + strconv.Itoa(int(d)) + ")"
}

// DeviceClient is what the Controller needs from a device connection. *Client implements it;
// tests use an in-memory device.
type DeviceClient interface {
	// ReadConfig fetches config.txt.
	ReadConfig(ctx context.Context, d Device) (*ConfigTxt, error)
	// Set writes a key and confirms it by read-back, returning the config read back.
	Set(ctx context.Context, d Device, name, value string) (*ConfigTxt, error)
	// Kick sends one watchdog heartbeat.
	Kick(ctx context.Context, d Device) error
}

var _ DeviceClient = (*Client)(nil)

// Controller defaults.
const (
	DefaultPollInterval = 2 * time.Second
	DefaultKickInterval = 5 * time.Second // res_bnfos's default
	DefaultRetryMin     = 200 * time.Millisecond
	DefaultRetryMax     = 10 * time.Second
)

// ControllerConfig configures a Controller.
type ControllerConfig struct {
	Devices []Device
	// ModeForMe is the relay mode that routes the lines to this node: 1 (A-B) for the node
	// wired to port B, 0 (A-D) for the node wired to port D.
	ModeForMe int

	// Kick enables the bypass scenario: while SetHealthy(true) the controller keeps the
	// device watchdog armed and kicks it every KickInterval (default 5s); when the node is
	// unhealthy or the controller stops, kicks stop and the device falls back to A-D by
	// itself after its wdogitime. While unhealthy, LinesToMe is not asserted either.
	Kick         bool
	KickInterval time.Duration

	// Timeout bounds each HTTP request or GBL4 exchange (default 3s, as bnfos).
	Timeout time.Duration
	// PollInterval is how often config.txt is read to notice drift (default 2s).
	PollInterval time.Duration
	// RetryMin and RetryMax bound the exponential backoff while a device fails
	// (defaults 200ms and 10s).
	RetryMin, RetryMax time.Duration

	Logger *slog.Logger
	// OnEvent, if set, is called for every DeviceEvent, one at a time in the order they
	// happen. It must not block.
	OnEvent func(DeviceEvent)
}

// EventKind says what happened to a device.
type EventKind int

// Device events.
const (
	EventConfirmed       EventKind = iota // a mode change was sent and confirmed by read-back
	EventInPlace                          // the desired mode was already in place; nothing sent
	EventDrift                            // the device left the asserted mode (reboot, button, watchdog); re-asserting
	EventUnreachable                      // the device stopped answering, or answers garbage
	EventReachable                        // the device answers again
	EventSetFailed                        // a set was not confirmed (device answered, value did not take); once per failure streak
	EventWatchdogFailure                  // the device watchdog reports failure (wdogstate 2)
	EventWatchdogArmed                    // the controller switched the watchdog on (bypass)
	EventKickFailed                       // a watchdog kick was not answered (reported on the first failure)
	EventKickOK                           // kicks are answered again after a failure
)

var eventNames = [...]string{"confirmed", "in-place", "drift", "unreachable", "reachable", "set-failed",
	"watchdog-failure", "watchdog-armed", "kick-failed", "kick-ok"}

// MarshalText encodes k as its name, for JSON and logs.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// DeviceEvent reports a change of one device's state.
type DeviceEvent struct {
	Device  string
	Kind    EventKind
	Desired Desired
	Mode    int // relay mode seen or set; -1 when unknown
	Err     error
	At      time.Time
}

// DeviceStatus is a snapshot of one device as the controller knows it. It encodes to JSON
// with snake_case keys for the daemon's API; times that never happened are left out.
type DeviceStatus struct {
	Name           string    `json:"name"`
	Host           string    `json:"host"`
	Reachable      bool      `json:"reachable"`            // the last read succeeded
	LastSeen       time.Time `json:"last_seen,omitzero"`   // last successful read
	Mode           int       `json:"mode"`                 // relay mode last read; -1 unknown
	Desired        Desired   `json:"desired"`              // "unknown", "to-me", "to-peer"
	WantMode       int       `json:"want_mode"`            // mode the desired state maps to; -1 for LinesUnknown
	InPlace        bool      `json:"in_place"`             // Mode == WantMode, confirmed by the last read
	Failures       int       `json:"failures"`             // consecutive failed attempts
	LastError      string    `json:"last_error,omitempty"` // the last failure, kept after recovery
	LastErrorAt    time.Time `json:"last_error_at,omitzero"`
	LastChange     time.Time `json:"last_change,omitzero"` // last confirmed change made by this controller
	LastChangeMode int       `json:"last_change_mode"`     // mode set then; -1 when none
	Changes        uint64    `json:"changes"`              // confirmed changes made by this controller
	Watchdog       int       `json:"watchdog"`             // 0 off, 1 on, 2 failure; -1 unknown
	LastKick       time.Time `json:"last_kick,omitzero"`   // last answered kick
	KickError      string    `json:"kick_error,omitempty"` // last kick failure, "" after a success
}

// Controller keeps every configured berofos in the relay mode the appliance wants. Each
// device has its own goroutine, so a hung device never delays the others or the caller.
type Controller struct {
	cfg    ControllerConfig
	client DeviceClient
	log    *slog.Logger

	mu        sync.Mutex
	running   bool
	desired   Desired
	gen       uint64 // incremented by every change of desired
	base      context.Context
	genCtx    context.Context
	genCancel context.CancelFunc
	healthy   bool
	status    []DeviceStatus
	wake      []chan struct{}
	kickWake  []chan struct{}

	evMu sync.Mutex
}

// NewController validates cfg and returns a Controller; nothing runs until Run. client nil
// means a *Client with cfg.Timeout.
func NewController(cfg ControllerConfig, client DeviceClient) (*Controller, error) {
	if len(cfg.Devices) == 0 {
		return nil, errors.New("berofos controller: no devices")
	}
	if cfg.ModeForMe != 0 && cfg.ModeForMe != 1 {
		return nil, fmt.Errorf("berofos controller: mode for this node %d: want 0 (port D) or 1 (port B)", cfg.ModeForMe)
	}
	names := map[string]bool{}
	for _, d := range cfg.Devices {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("berofos controller: %w", err)
		}
		if names[d.Name] {
			return nil, fmt.Errorf("berofos controller: device %q twice", d.Name)
		}
		names[d.Name] = true
		if cfg.Kick && len(d.MAC) != 6 {
			return nil, fmt.Errorf("berofos controller: [%s]: kicking the watchdog needs the device's mac", d.Name)
		}
	}
	for _, p := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"timeout", &cfg.Timeout, DefaultTimeout},
		{"poll interval", &cfg.PollInterval, DefaultPollInterval},
		{"kick interval", &cfg.KickInterval, DefaultKickInterval},
		{"retry min", &cfg.RetryMin, DefaultRetryMin},
		{"retry max", &cfg.RetryMax, DefaultRetryMax},
	} {
		if *p.v < 0 {
			return nil, fmt.Errorf("berofos controller: %s %v is negative", p.name, *p.v)
		}
		if *p.v == 0 {
			*p.v = p.def
		}
	}
	if cfg.RetryMax < cfg.RetryMin {
		return nil, fmt.Errorf("berofos controller: retry max %v below retry min %v", cfg.RetryMax, cfg.RetryMin)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if client == nil {
		client = NewClient(ClientOptions{Timeout: cfg.Timeout, Logger: log})
	}
	c := &Controller{cfg: cfg, client: client, log: log}
	for _, d := range cfg.Devices {
		c.status = append(c.status, DeviceStatus{Name: d.Name, Host: d.Host, Mode: -1, WantMode: -1, LastChangeMode: -1, Watchdog: -1})
		c.wake = append(c.wake, make(chan struct{}, 1))
		c.kickWake = append(c.kickWake, make(chan struct{}, 1))
	}
	return c, nil
}

func (c *Controller) wantMode(d Desired) int {
	switch d {
	case LinesToMe:
		return c.cfg.ModeForMe
	case LinesToPeer:
		return 1 - c.cfg.ModeForMe
	}
	return -1
}

// SetDesired asserts where the lines must go. It never blocks: the newest value wins, and a
// request in flight for an older value is cancelled.
func (c *Controller) SetDesired(d Desired) {
	c.mu.Lock()
	if d == c.desired {
		c.mu.Unlock()
		return
	}
	c.desired = d
	c.gen++
	if c.genCancel != nil {
		c.genCancel()
		c.genCtx, c.genCancel = context.WithCancel(c.base)
	}
	want := c.wantMode(d)
	for i := range c.status {
		s := &c.status[i]
		s.Desired, s.WantMode = d, want
		// Not in place until a read made for this desire says so: the last read may be
		// seconds old (the mode this node set the last time it was Master), and a caller
		// waiting for the lines must not be answered by it.
		s.InPlace = false
	}
	c.mu.Unlock()
	for _, w := range c.wake {
		poke(w)
	}
}

// SetHealthy tells a kicking controller whether the node is fit to keep the lines: kicks are
// sent only while healthy. Without Kick it has no effect.
func (c *Controller) SetHealthy(ok bool) {
	c.mu.Lock()
	changed := c.healthy != ok
	c.healthy = ok
	c.mu.Unlock()
	if changed && ok && c.cfg.Kick {
		for i := range c.wake {
			poke(c.kickWake[i])
			poke(c.wake[i])
		}
	}
}

func drain(ch chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Status returns a snapshot of every device, in configuration order.
func (c *Controller) Status() []DeviceStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]DeviceStatus(nil), c.status...)
}

// Run drives the devices until ctx is done, then returns nil. Kicks stop when Run returns.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("berofos controller: Run called twice")
	}
	c.running = true
	c.base = ctx
	c.genCtx, c.genCancel = context.WithCancel(ctx)
	c.mu.Unlock()

	// Pokes from SetDesired and SetHealthy before Run are covered by the first pass.
	for i := range c.wake {
		drain(c.wake[i])
		drain(c.kickWake[i])
	}
	var wg sync.WaitGroup
	for i := range c.cfg.Devices {
		w := &worker{c: c, i: i, dev: c.cfg.Devices[i], log: c.log.With("berofos", c.cfg.Devices[i].Name)}
		wg.Go(func() { w.run(ctx) })
		if c.cfg.Kick {
			wg.Go(func() { w.kickLoop(ctx) })
		}
	}
	<-ctx.Done()
	wg.Wait()
	c.mu.Lock()
	c.genCancel()
	c.mu.Unlock()
	return nil
}

func (c *Controller) snapshot() (Desired, uint64, context.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.desired, c.gen, c.genCtx, c.healthy
}

func (c *Controller) emit(e DeviceEvent) {
	if c.cfg.OnEvent == nil {
		return
	}
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.cfg.OnEvent(e)
}

// worker owns one device.
type worker struct {
	c   *Controller
	i   int
	dev Device
	log *slog.Logger

	asserted uint64 // generation whose mode was last confirmed on the device; 0 none
	// reachable as last reported by an event: the first failure of a never-seen device is
	// reported too.
	reported   bool
	reachable  bool
	lastWstate int
	kickFailed bool
	setFailing bool // a set-failed event was sent for the current failure streak
}

func (w *worker) update(f func(s *DeviceStatus)) {
	w.c.mu.Lock()
	f(&w.c.status[w.i])
	w.c.mu.Unlock()
}

func (w *worker) event(kind EventKind, d Desired, mode int, err error) {
	w.c.emit(DeviceEvent{Device: w.dev.Name, Kind: kind, Desired: d, Mode: mode, Err: err, At: time.Now()})
}

func (w *worker) run(ctx context.Context) {
	w.lastWstate = -1
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		d, gen, genCtx, healthy := w.c.snapshot()
		err := w.reconcile(genCtx, d, gen, healthy)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			backoff = 0
			wait = w.c.cfg.PollInterval
			w.setFailing = false
			w.update(func(s *DeviceStatus) { s.Failures = 0 })
		case genCtx.Err() != nil:
			// The desired state changed under us: start over at once (the poke that came
			// with the change is covered by this pass).
			drain(w.c.wake[w.i])
			continue
		default:
			if backoff == 0 {
				backoff = w.c.cfg.RetryMin
			} else {
				backoff = min(2*backoff, w.c.cfg.RetryMax)
			}
			wait = backoff
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.c.wake[w.i]:
		case <-t.C:
		}
		t.Stop()
	}
}

// opTimeout bounds one reconcile pass: a read, an optional watchdog arm, a set and its
// read-back.
func (w *worker) opTimeout() time.Duration { return 4*w.c.cfg.Timeout + time.Second }

// reconcile reads the device and, when a state is desired and not in place, sets it.
func (w *worker) reconcile(genCtx context.Context, d Desired, gen uint64, healthy bool) error {
	ctx, cancel := context.WithTimeout(genCtx, w.opTimeout())
	defer cancel()
	want := w.c.wantMode(d)

	cfg, err := w.c.client.ReadConfig(ctx, w.dev)
	if err != nil {
		return w.failed(genCtx, d, err, EventUnreachable)
	}
	mode, err := w.seen(cfg, d)
	if err != nil {
		return w.failed(genCtx, d, err, EventUnreachable)
	}
	if w.c.cfg.Kick && healthy && w.lastWstate != WatchdogOn {
		cfg2, err := w.c.client.Set(ctx, w.dev, "wdog", "1")
		if err != nil {
			return w.failed(genCtx, d, fmt.Errorf("arming watchdog: %w", err), EventSetFailed)
		}
		if cfg2 == nil {
			return w.failed(genCtx, d, fmt.Errorf("arming watchdog: %w: no read-back", ErrNotApplied), EventSetFailed)
		}
		if ws, err := cfg2.Int("wdogstate"); err == nil {
			w.lastWstate = ws
			w.update(func(s *DeviceStatus) { s.Watchdog = ws })
		}
		w.log.Info("berofos watchdog armed")
		w.event(EventWatchdogArmed, d, mode, nil)
		if m, err := cfg2.Mode(); err == nil {
			mode = m
		}
	}
	if want < 0 {
		return nil
	}
	if w.c.cfg.Kick && !healthy && d == LinesToMe {
		// Bypass: an unhealthy node does not pull the lines back; the watchdog decides.
		return nil
	}
	if mode == want {
		if w.asserted != gen {
			w.asserted = gen
			w.log.Info("berofos already in the desired mode", "desired", d, "mode", mode)
			w.event(EventInPlace, d, mode, nil)
		}
		return nil
	}
	if w.asserted == gen {
		w.log.Warn("berofos left the asserted mode; re-asserting", "desired", d, "want", want, "mode", mode)
		w.event(EventDrift, d, mode, nil)
		w.asserted = 0
	}
	cfg2, err := w.c.client.Set(ctx, w.dev, "mode", strconv.Itoa(want))
	if err != nil {
		kind := EventUnreachable
		if errors.Is(err, ErrNotApplied) {
			kind = EventSetFailed
		}
		return w.failed(genCtx, d, fmt.Errorf("setting mode %d: %w", want, err), kind)
	}
	if cfg2 == nil {
		return w.failed(genCtx, d, fmt.Errorf("%w: mode %d sent, no read-back", ErrNotApplied, want), EventSetFailed)
	}
	if m, err := cfg2.Mode(); err != nil || m != want {
		return w.failed(genCtx, d, fmt.Errorf("%w: mode %d sent, read back %d (%v)", ErrNotApplied, want, m, err), EventSetFailed)
	}
	now := time.Now()
	w.asserted = gen
	w.update(func(s *DeviceStatus) {
		s.Mode, s.InPlace = want, s.WantMode == want
		s.LastChange, s.LastChangeMode = now, want
		s.Changes++
		s.LastSeen = now
	})
	w.log.Info("berofos relay mode changed and confirmed", "desired", d, "mode", want)
	w.event(EventConfirmed, d, want, nil)
	return nil
}

// seen records a successful read: reachability, mode, watchdog state.
func (w *worker) seen(cfg *ConfigTxt, d Desired) (int, error) {
	mode, err := cfg.Mode()
	if err != nil {
		return -1, err
	}
	ws, werr := cfg.Int("wdogstate")
	if werr != nil {
		ws = -1
	}
	now := time.Now()
	w.update(func(s *DeviceStatus) {
		s.Reachable, s.LastSeen = true, now
		s.Mode, s.Watchdog = mode, ws
		s.InPlace = s.WantMode >= 0 && mode == s.WantMode
	})
	if !w.reported || !w.reachable {
		if w.reported {
			w.log.Info("berofos reachable again", "mode", mode)
			w.event(EventReachable, d, mode, nil)
		}
		w.reported, w.reachable = true, true
	}
	if ws == WatchdogFailure && w.lastWstate != WatchdogFailure {
		w.log.Warn("berofos watchdog failed over to A-D", "mode", mode)
		w.event(EventWatchdogFailure, d, mode, nil)
	}
	w.lastWstate = ws
	return mode, nil
}

// failed records an error, unless it only means the desired state changed meanwhile.
func (w *worker) failed(genCtx context.Context, d Desired, err error, kind EventKind) error {
	if genCtx.Err() != nil {
		return err
	}
	now := time.Now()
	w.update(func(s *DeviceStatus) {
		s.Failures++
		s.LastError, s.LastErrorAt = err.Error(), now
		if kind == EventUnreachable {
			s.Reachable = false
		}
	})
	switch kind {
	case EventUnreachable:
		if !w.reported || w.reachable {
			w.reported, w.reachable = true, false
			w.log.Warn("berofos unreachable", "err", err)
			w.event(EventUnreachable, d, -1, err)
		}
	default:
		w.log.Warn("berofos set failed", "err", err)
		if !w.setFailing { // once per failure streak; Status counts the attempts
			w.setFailing = true
			w.event(kind, d, -1, err)
		}
	}
	return err
}

// kickLoop kicks the watchdog every KickInterval while the node is healthy.
func (w *worker) kickLoop(ctx context.Context) {
	t := time.NewTicker(w.c.cfg.KickInterval)
	defer t.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-w.c.kickWake[w.i]:
			}
		}
		d, _, _, healthy := w.c.snapshot()
		if !healthy {
			continue
		}
		kctx, cancel := context.WithTimeout(ctx, w.c.cfg.Timeout)
		err := w.c.client.Kick(kctx, w.dev)
		cancel()
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if err != nil {
			w.update(func(s *DeviceStatus) { s.KickError = err.Error() })
			if !w.kickFailed {
				w.kickFailed = true
				w.log.Warn("berofos watchdog kick failed", "err", err)
				w.event(EventKickFailed, d, -1, err)
			}
			continue
		}
		w.update(func(s *DeviceStatus) { s.LastKick, s.KickError = now, "" })
		if w.kickFailed {
			w.kickFailed = false
			w.log.Info("berofos watchdog kicks answered again")
			w.event(EventKickOK, d, -1, nil)
		}
	}
}
