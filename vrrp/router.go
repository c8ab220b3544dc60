package vrrp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by [New] and [Dial] to zero Config fields.
const (
	// DefaultGARPCount is the number of gratuitous ARPs per address on becoming Master, as
	// keepalived sends (garp_master_repeat 5).
	DefaultGARPCount = 5

	// DefaultGARPInterval spaces the gratuitous ARPs. The first goes out at once; the repeats
	// cover a lost frame or a switch port still learning, and at 200 ms five of them are done
	// within a second, before a host that missed them all would normally re-resolve.
	DefaultGARPInterval = 200 * time.Millisecond
)

// The multicast groups VRRP adverts are sent to: 224.0.0.18 for IPv4 (RFC 3768 section 5.2.2,
// RFC 9568 section 5.1.1.2) and ff02::12 for IPv6 (RFC 9568 section 5.1.2.2).
var (
	vrrpGroup  = netip.AddrFrom4([4]byte{224, 0, 0, 18})
	vrrpGroup6 = netip.MustParseAddr("ff02::12")
)

// MulticastGroup is the group adverts from primary go to: 224.0.0.18 for an IPv4 address,
// ff02::12 for an IPv6 one.
func MulticastGroup(primary netip.Addr) netip.Addr {
	if primary.Unmap().Is6() {
		return vrrpGroup6
	}
	return vrrpGroup
}

// Conn sends and receives VRRP adverts: the raw IPv4 protocol-112 socket in production.
type Conn interface {
	// Receive blocks until an advert for this virtual router's interface arrives and returns
	// it with its own copy of the IP payload and its destination (Inbound.Dst, which the
	// version 3 checksum covers), and when it can the kernel's receive time (Inbound.Arrived),
	// from which the Router dates the advert. After Close it returns an error.
	Receive() (Inbound, error)
	// Send transmits one marshalled advert to dst, the multicast group or one unicast peer,
	// from the Primary address with TTL (hop limit) 255. The Router calls it once per
	// destination: a version 3 advert's checksum covers dst, so each peer gets its own bytes.
	Send(payload []byte, dst netip.Addr) error
	Close() error
}

// Addresser installs and removes the virtual addresses. Implementations must never remove an
// address they did not add.
//
// An Addresser may also have a method Flush() error for slow bookkeeping (the production one
// fsyncs its ownership record there): the Router calls it after every step, once the
// addresses, the first gratuitous ARP and OnEvent are done, so that it never delays them.
// It may also have a method Prepare(vips []netip.Prefix): a Router that wakes before a
// takeover (see [Router.Run]) calls it then, so that the Add at the deadline has only the
// kernel request left to do (the production one lists the link's addresses there).
type Addresser interface {
	// Add installs the prefixes; it returns once the kernel has confirmed them.
	Add(vips []netip.Prefix) error
	// Remove removes those of the prefixes that this Addresser added.
	Remove(vips []netip.Prefix) error
}

// Announcer tells the segment where the virtual addresses now live.
type Announcer interface {
	// Announce sends one gratuitous ARP (an unsolicited Neighbor Advertisement for an IPv6
	// address) for each address, now, without blocking on replies.
	Announce(ips []netip.Addr) error
}

// Config configures a [Router].
type Config struct {
	// Interface is the network interface the virtual router runs on.
	Interface string

	// Version is the protocol: 2 (RFC 3768, the default when zero) or 3 (RFC 9568).
	Version  uint8
	VRID     uint8
	Priority uint8 // 1..254, or 255 for the address owner (RFC 3768 section 5.3.4)
	// AdvertInterval: whole seconds 1..255 for version 2; for version 3 a multiple of 10 ms
	// in 10 ms..40.95 s. 0 means DefaultAdvertInterval.
	AdvertInterval time.Duration
	Preempt        bool

	// Primary is this node's own fixed address on Interface: the advert source and the
	// tie-breaker between equal priorities. For an IPv4 group it is an IPv4 address, and Dial
	// picks the interface's first one when it is unset; for an IPv6 group it is the
	// interface's link-local address (RFC 9568 section 5.1.2.1), which Dial picks when unset.
	Primary netip.Addr

	// VirtualIPs are the addresses the Master holds, with the prefix length they are
	// installed with: all IPv4, or all IPv6 (an IPv6 group, VRRPv3 only). In an IPv6 group
	// the first is the group's link-local virtual address (RFC 9568 section 5.2.9), such as
	// fe80::1/64.
	VirtualIPs []netip.Prefix

	// Unicast sends adverts to each of Peers instead of 224.0.0.18 and accepts adverts only
	// from Peers, for networks that block multicast. Peers must be on-link: adverts are sent
	// with TTL 255 and a receiver drops any other TTL.
	Unicast bool
	Peers   []netip.Addr

	// VirtualMAC puts the virtual addresses on a bridge-mode macvlan "vrrp.<VRID>" carrying
	// the RFC 3768 section 7.3 MAC 00-00-5E-00-01-{VRID}, from which adverts and ARP are sent.
	// Without it the Master uses the interface's own MAC and gratuitous ARP, like keepalived.
	VirtualMAC bool

	// GARPCount gratuitous ARPs per address are sent on becoming Master, GARPInterval apart,
	// the first at once. 0 means DefaultGARPCount and DefaultGARPInterval. An IPv6 group sends
	// unsolicited Neighbor Advertisements instead, as many and as far apart.
	GARPCount    int
	GARPInterval time.Duration
	// GARPRefresh, when not zero, makes a Master announce its addresses again (one round of
	// gratuitous ARP) every GARPRefresh after the burst, for as long as it is Master, for the
	// ARP caches that missed the burst or aged the entry out. 0: no refresh.
	GARPRefresh time.Duration

	// NARouter sets the Router flag of an IPv6 group's Neighbor Advertisements (RFC 4861
	// section 4.4; RFC 9568 section 6.4.2 makes it the operator's choice). Set it when hosts
	// use a virtual address as their default router: a host that hears an NA without the
	// flag for its router takes it off its default router list (RFC 4861 section 7.2.5). A
	// PBX that is no router leaves it off.
	NARouter bool

	// AuthType and AuthData: version 2 only (see MachineConfig).
	AuthType AuthType
	AuthData [8]byte

	// StateDir holds a record of the virtual addresses this node claims as its own (those not
	// configured when it started, written once by Dial), so that a restart after a crash
	// removes the ones it left behind and never anyone else's. Empty disables that recovery. A
	// tmpfs such as /run/redundantd suits it best: the record matters only as long as the
	// addresses, which do not survive a reboot.
	StateDir string

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger

	// OnEvent is called for every state transition, in order, from the Router's goroutine,
	// after the addresses have been installed (and the first gratuitous ARP sent) or removed.
	// It must not block: adverts and timers wait while it runs, so a slow OnEvent delays or
	// loses an election. Hand the Event to a buffered channel or queue and return.
	OnEvent func(Event)

	// OnHeld is called, from the Router's goroutine, each time Master_Down_Timer fires while
	// the Backup is held (see [Router.SetHold]); nil ignores it. The same rule as OnEvent:
	// it must not block.
	OnHeld func(Held)
}

// Event reports a state transition of the Router.
type Event struct {
	From, To State
	// Cause is why, for programs: CauseMasterDown, CausePreempted, CauseInterfaceGone, ...
	// Its String is the short form ("master down", "preempted by higher priority",
	// "interface gone", ...).
	Cause Cause
	// Reason is why, for people: it names the peer and priorities, the interface ("interface
	// eth0 gone"), or the operator's reason ("resigned: <reason>", "takeover: <reason>").
	Reason   string
	At       time.Time
	MasterIP netip.Addr // the Master as known after the transition (this node's Primary when Master)
	// Err is non-nil when installing (To Master) or removing (From Master) the virtual
	// addresses failed; the Router keeps retrying once per advertisement interval.
	Err error
}

// Status is a snapshot of a Router.
type Status struct {
	State    State
	Priority uint8
	// MasterAdverInterval is the interval Master_Down_Interval is computed from (see
	// [MachineStatus]): the Master's for a version 3 Backup, our own otherwise.
	MasterAdverInterval time.Duration
	// VirtualIPs are the addresses this node holds as Master (confirmed by the Addresser);
	// empty when it is not Master or their installation has not succeeded yet.
	VirtualIPs  []netip.Prefix
	MasterIP    netip.Addr
	Since       time.Time
	Transitions uint64
	Dropped     map[string]uint64
	// Fault says why the node is out of the protocol (in Initialize, sending nothing, holding
	// no address), e.g. "interface eth0 gone"; empty when it takes part. It clears, and the
	// node rejoins as Backup, when the interface is usable again.
	Fault string
	// RecordError says why the record of claimed virtual addresses (Config.StateDir) could not
	// be written; the Router runs on with it in memory and retries. Empty when it is on disk.
	RecordError string
	// Preempt is Preempt_Mode as configured now (Config.Preempt, or the last Reload).
	Preempt bool
	// Passive: in Backup this node never takes over on its own (see [Router.SetPassive]).
	Passive bool
	// PreemptSuppressed: the node resigned and does not preempt until it next becomes Master
	// through Master_Down_Timer or TakeOver (see [Router.Resign]).
	PreemptSuppressed bool
	// Held: a held Backup ([Router.SetHold]) missed the Master's adverts for
	// Master_Down_Interval and stays Backup.
	Held bool
	// LastAdvert is when this node, in Backup, last accepted a valid advert; zero: never.
	LastAdvert time.Time
	// Adverts counts the adverts sent and received since the Router was made.
	Adverts AdvertCounts
}

// AdvertCounts are a Router's advert counters (the metrics of issue 11 section 3). Sent and
// SendErrors count per destination: a version 3 unicast group sends one packet to each peer.
type AdvertCounts struct {
	Sent             uint64 // adverts the kernel accepted
	SentPriorityZero uint64 // of Sent, priority 0: this node resigning (RFC 3768 section 6.4.3)
	SendErrors       uint64 // sends the kernel refused
	// Received counts the adverts that passed the section 7.1 checks (those that failed are
	// Status.Dropped), ReceivedPriorityZero those of them from a Master resigning.
	Received             uint64
	ReceivedPriorityZero uint64
}

// Add returns the sum of c and o (a Unit's, over its members).
func (c AdvertCounts) Add(o AdvertCounts) AdvertCounts {
	return AdvertCounts{Sent: c.Sent + o.Sent, SentPriorityZero: c.SentPriorityZero + o.SentPriorityZero,
		SendErrors: c.SendErrors + o.SendErrors, Received: c.Received + o.Received,
		ReceivedPriorityZero: c.ReceivedPriorityZero + o.ReceivedPriorityZero}
}

// RuntimeConfig is the part of a Router's Config that can change while it runs (for a
// configuration reload on SIGHUP); see [Router.Reload].
type RuntimeConfig struct {
	Priority     uint8         // 1..255
	Preempt      bool          // Preempt_Mode
	GARPCount    int           // 0 means DefaultGARPCount; used from the next takeover
	GARPInterval time.Duration // 0 means DefaultGARPInterval; used from the next takeover
	GARPRefresh  time.Duration // 0: no refresh; a Master applies a change at once
}

// ErrRuntimeConfig is wrapped by every error [Router.Reload] returns.
var ErrRuntimeConfig = errors.New("vrrp: invalid runtime configuration")

// validate checks rc and fills in the defaults.
func (rc RuntimeConfig) validate() (RuntimeConfig, error) {
	switch {
	case rc.Priority == 0:
		return rc, fmt.Errorf("%w: priority 0: must be 1..255 (0 is only sent, by a Master that resigns)", ErrRuntimeConfig)
	case rc.GARPCount < 0:
		return rc, fmt.Errorf("%w: GARPCount %d: must not be negative", ErrRuntimeConfig, rc.GARPCount)
	case rc.GARPInterval < 0:
		return rc, fmt.Errorf("%w: GARPInterval %v: must not be negative", ErrRuntimeConfig, rc.GARPInterval)
	case rc.GARPRefresh < 0:
		return rc, fmt.Errorf("%w: GARPRefresh %v: must not be negative", ErrRuntimeConfig, rc.GARPRefresh)
	}
	if rc.GARPCount == 0 {
		rc.GARPCount = DefaultGARPCount
	}
	if rc.GARPInterval == 0 {
		rc.GARPInterval = DefaultGARPInterval
	}
	return rc, nil
}

// Router runs one VRRP virtual router: it owns a [Machine] and performs its actions on a
// [Conn], an [Addresser] and an [Announcer].
//
// The goroutine that calls Run owns the Machine and does all the protocol work, so actions
// happen exactly in the order the Machine returns them: the advert; then, on becoming Master,
// the addresses (confirmed by the Addresser), the first gratuitous ARP and OnEvent; on leaving
// Master, the end of the ARP burst and the removal of the addresses before OnEvent. A second
// goroutine only reads the Conn. One timer follows [Machine.Deadline] and another spaces the
// gratuitous ARPs; nothing on the way sleeps, so a takeover costs the RFC time plus a netlink
// round trip (about 2 ms on a veth pair, see TestRouterFailoverTiming).
type Router struct {
	cfg     Config
	log     *slog.Logger
	conn    Conn
	addrs   Addresser
	arp     Announcer
	m       *Machine
	vipIPs  []netip.Addr
	dsts    []netip.Addr   // where adverts go: the multicast group, or each unicast peer
	closers []func() error // extra resources (Dial's macvlan, netlink handle), closed last

	running   atomic.Bool
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	wake      chan struct{} // an op was queued

	mu     sync.Mutex
	status Status
	ops    []func() // operator requests, applied in order by the Run goroutine

	// link follows the interface (Dial's); nil: the interface is taken to be always usable.
	link linkWatcher

	// Owned by the Run goroutine.
	recordErr     string // the last Flush error, as published in Status.RecordError
	master        bool   // the Machine is Master
	held          bool   // the Addresser confirmed the virtual addresses
	announceDue   bool   // install succeeded: step sends the first gratuitous ARP after its adverts
	installFailed bool   // an Add failed: retry while Master
	removeFailed  bool   // a Remove failed: retry while not Master
	lastRetry     time.Time
	garp          announceSchedule              // when the gratuitous ARPs are due
	garpTimer     *time.Timer                   // follows garp.deadline()
	newTimer      func() (protocolTimer, error) // the protocol timer's; nil: a time.Timer
	// takeoverLead is how long before a takeover deadline Run wakes (see readyForTakeover);
	// zero: at the deadline. Dial sets it with the precise timer.
	takeoverLead time.Duration
	spinWait     func() // between two looks at the clock while ready; nil: runtime.Gosched
	sendFailing  bool
	lastNow      time.Time            // the latest time given to the Machine (see at)
	seenDropped  map[string]uint64    // Dropped as last reported
	dropLogged   map[string]time.Time // when each reason was last logged
}

// linkWatcher follows the interface the Router runs on; Dial provides one on Linux.
type linkWatcher interface {
	// check returns why the interface cannot carry the protocol now, as a CauseInterface*
	// cause and a reason naming the interface, or CauseUnknown and "" when it can. It may
	// rebind the Router's I/O to a recreated interface. It runs on the Run goroutine.
	check() (Cause, string)
	// changed receives a value when the interface may have changed (nil: polling only).
	changed() <-chan struct{}
}

// primaryFollower is implemented by a linkWatcher that may move the Router's I/O to another
// Primary address (a picked one the interface no longer has; see linkVerdict).
type primaryFollower interface {
	// primary is the address the I/O sends from now, after check.
	primary() netip.Addr
}

// linkPoller is implemented by a linkWatcher that says how often the Router must poll it;
// without it the Router polls once per advertisement interval.
type linkPoller interface {
	// pollInterval is the time between two checks, given the advertisement interval; it may
	// change, and a change is followed by a value on changed.
	pollInterval(advert time.Duration) time.Duration
}

// linkPollInterval is how often Run checks the link now.
func (r *Router) linkPollInterval() time.Duration {
	every := max(r.cfg.AdvertInterval, time.Second)
	if p, ok := r.link.(linkPoller); ok {
		return p.pollInterval(every)
	}
	return every
}

// dropLogEvery limits the warning for one drop reason: a misconfigured peer (another
// password, interval or address list: the classic split brain) is named at once, and then
// once a minute while it lasts, not once per advert.
const dropLogEvery = time.Minute

// New returns a Router over the given I/O. Run takes ownership of conn, and of addrs and arp
// when they implement io.Closer, and closes them when it returns.
func New(cfg Config, conn Conn, addrs Addresser, arp Announcer) (*Router, error) {
	if conn == nil || addrs == nil || arp == nil {
		return nil, errors.New("vrrp: New needs a Conn, an Addresser and an Announcer")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	mc := cfg.machineConfig()
	m, err := NewMachine(mc)
	if err != nil {
		return nil, err
	}
	r := &Router{
		cfg:    cfg,
		log:    cfg.Logger.With("vrid", cfg.VRID, "interface", cfg.Interface),
		conn:   conn,
		addrs:  addrs,
		arp:    arp,
		m:      m,
		vipIPs: mc.VirtualIPs,
		dsts:   cfg.destinations(),
		wake:   make(chan struct{}, 1),
		garp:   announceSchedule{count: cfg.GARPCount, interval: cfg.GARPInterval, refresh: cfg.GARPRefresh},
	}
	r.publish()
	return r, nil
}

func (c Config) machineConfig() MachineConfig {
	mc := MachineConfig{
		Version:        c.Version,
		VRID:           c.VRID,
		Priority:       c.Priority,
		AdvertInterval: c.AdvertInterval,
		Preempt:        c.Preempt,
		Primary:        c.Primary,
		AuthType:       c.AuthType,
		AuthData:       c.AuthData,
	}
	for _, p := range c.VirtualIPs {
		mc.VirtualIPs = append(mc.VirtualIPs, p.Addr())
	}
	if c.Unicast {
		mc.Peers = slices.Clone(c.Peers)
	}
	return mc
}

// destinations is where adverts go: the group of the Primary's family, or each unicast peer.
func (c Config) destinations() []netip.Addr {
	if c.Unicast {
		return slices.Clone(c.Peers)
	}
	return []netip.Addr{MulticastGroup(c.Primary)}
}

// withDefaults fills in the zero fields and rejects what neither the Machine nor the I/O can
// use. Field checks that belong to the protocol (VRID, priority, interval) are the Machine's.
func (c Config) withDefaults() (Config, error) {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AdvertInterval == 0 {
		c.AdvertInterval = DefaultAdvertInterval
	}
	switch {
	case c.GARPCount < 0:
		return c, fmt.Errorf("vrrp: GARPCount %d: must not be negative", c.GARPCount)
	case c.GARPCount == 0:
		c.GARPCount = DefaultGARPCount
	}
	switch {
	case c.GARPInterval < 0:
		return c, fmt.Errorf("vrrp: GARPInterval %v: must not be negative", c.GARPInterval)
	case c.GARPInterval == 0:
		c.GARPInterval = DefaultGARPInterval
	}
	if c.GARPRefresh < 0 {
		return c, fmt.Errorf("vrrp: GARPRefresh %v: must not be negative", c.GARPRefresh)
	}
	if err := c.checkVirtualIPs(); err != nil {
		return c, err
	}
	if c.IPv6() && c.Version != 3 {
		return c, fmt.Errorf("vrrp: VirtualIPs %v: IPv6 virtual addresses need Version 3 (RFC 9568); version 2 carries IPv4 only", c.VirtualIPs[0])
	}
	c.VirtualIPs = slices.Clone(c.VirtualIPs)
	if c.Unicast && len(c.Peers) == 0 {
		return c, errors.New("vrrp: Peers: unicast mode needs at least one peer")
	}
	if !c.Unicast && len(c.Peers) > 0 {
		return c, errors.New("vrrp: Peers: set only in unicast mode (Unicast = true)")
	}
	for i, p := range c.Peers {
		if !p.IsValid() || !sameFamily(p, c.VirtualIPs[0].Addr()) {
			return c, fmt.Errorf("vrrp: Peers[%d] %q: not an address of the virtual addresses' family", i, p)
		}
	}
	c.Peers = slices.Clone(c.Peers)
	if c.OnEvent == nil {
		c.OnEvent = func(Event) {}
	}
	return c, nil
}

// IPv6 reports whether c is an IPv6 group: its virtual addresses are IPv6.
func (c Config) IPv6() bool {
	return len(c.VirtualIPs) > 0 && c.VirtualIPs[0].Addr().Is6() && !c.VirtualIPs[0].Addr().Is4In6()
}

func (c Config) family() string {
	if c.IPv6() {
		return "IPv6"
	}
	return "IPv4"
}

// checkVirtualIPs requires one or more addresses with prefix lengths, all of one family and
// none twice; in an IPv6 group, the link-local virtual address first (RFC 9568 section 5.2.9:
// "the first address MUST be the IPv6 link-local address associated with the Virtual
// Router").
func (c Config) checkVirtualIPs() error {
	if len(c.VirtualIPs) == 0 {
		return errors.New("vrrp: VirtualIPs: at least one virtual address is needed")
	}
	v6 := c.IPv6()
	for i, p := range c.VirtualIPs {
		a := p.Addr()
		switch {
		case !p.IsValid() || a.Zone() != "" || a.Is4In6():
			return fmt.Errorf("vrrp: VirtualIPs[%d] %q: not an IP address with prefix length", i, p)
		case a.Is6() != v6:
			return fmt.Errorf("vrrp: VirtualIPs[%d] %s: an %s group takes %s addresses only; IPv4 and IPv6 need a group each", i, p, c.family(), c.family())
		case v6 && i == 0 && !a.IsLinkLocalUnicast():
			return fmt.Errorf("vrrp: VirtualIPs[0] %s: the first address of an IPv6 group must be its link-local virtual address, such as fe80::1/64 (RFC 9568 section 5.2.9)", p)
		case slices.ContainsFunc(c.VirtualIPs[:i], func(q netip.Prefix) bool { return q.Addr() == a }):
			return fmt.Errorf("vrrp: VirtualIPs[%d] %s: listed twice", i, p)
		}
	}
	return nil
}

// Status returns a snapshot of the Router. It is safe for concurrent use.
func (r *Router) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.VirtualIPs = slices.Clone(s.VirtualIPs)
	s.Dropped = maps.Clone(s.Dropped)
	return s
}

// maxPendingOps bounds the operator requests waiting for the Run goroutine (only a Router
// whose Run has not started yet, or a flood of API calls, gets near it): the oldest is
// dropped, with a warning.
const maxPendingOps = 256

// enqueue hands an operator request to the Run goroutine. Requests are applied in the order
// they were made: at once while Run runs, before Start when Run has not started.
func (r *Router) enqueue(what string, fn func()) {
	r.mu.Lock()
	if len(r.ops) >= maxPendingOps {
		r.ops = slices.Delete(r.ops, 0, 1)
		r.log.Warn("too many pending requests; dropping the oldest", "request", what)
	}
	r.ops = append(r.ops, fn)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// applyOps runs the queued operator requests on the Run goroutine.
func (r *Router) applyOps() {
	r.mu.Lock()
	ops := r.ops
	r.ops = nil
	r.mu.Unlock()
	for _, fn := range ops {
		fn()
	}
}

// SetPriority changes this node's priority (1..255), for a swap or for Passive mode. It is
// safe for concurrent use and does not wait: the Run goroutine applies it at once (or, if Run
// has not started, before it starts). A Master announces the new priority at once. Priority 0
// is ignored: to resign, call Resign.
func (r *Router) SetPriority(p uint8) {
	r.enqueue("set priority", func() { r.applyPriority(p) })
}

// SetPassive turns passive mode on or off (the appliance's Passive Backup, for upgrades and
// restores). A passive node in Backup never takes over on its own: it runs no
// Master_Down_Timer, a priority-0 advert from the Master does not make it Master, and it
// does not preempt; a passive node that starts becomes Backup, even with priority 255, and
// stays there until TakeOver. Turning passive mode off starts Master_Down_Timer afresh. A
// Master stays Master (call Resign to step down). Safe for concurrent use; it does not wait.
func (r *Router) SetPassive(on bool) {
	r.enqueue("set passive", func() {
		r.log.Info("passive mode", "passive", on)
		r.m.SetPassive(r.now(), on)
		r.publish()
	})
}

// SetHold holds (on) or releases this Backup's takeover when the Master's adverts stop, for a
// caller with another sign of the Master's life (see [Machine.SetHold]): while held, a
// Master_Down_Timer that fires for want of adverts calls Config.OnHeld and the node stays
// Backup; released after such an expiry, the node becomes Master at once (CauseMasterDown).
// A priority-0 advert and preemption are not held. Safe for concurrent use; it does not wait.
func (r *Router) SetHold(on bool) {
	r.enqueue("set hold", func() {
		r.step(r.m.SetHold(time.Now(), on))
	})
}

// Resign makes a Master step down on the operator's word (a swap, maintenance): it sends an
// advert with priority 0, releases the virtual addresses and becomes Backup, with an Event of
// CauseResigned and Reason "resigned: " + reason. It then does not preempt (even with
// Preempt or priority 255) until it next becomes Master through Master_Down_Timer or
// TakeOver, so that the peer keeps the role. On a Backup, or before Run, it does nothing.
// Safe for concurrent use; it does not wait.
func (r *Router) Resign(reason string) {
	r.enqueue("resign", func() {
		if r.m.Status().State == StateMaster {
			r.log.Info("resigning on request", "reason", reason)
		}
		r.step(r.m.Resign(r.now(), reason))
	})
}

// TakeOver makes a Backup (passive or not) Master now, as Master_Down_Timer expiry would:
// the addresses, gratuitous ARP and an advert, with an Event of CauseTakeOver and Reason
// "takeover: " + reason. A Master of higher priority that has not resigned takes the role
// back with its next advert (RFC 3768 section 6.4.3): for a swap, the Master resigns first.
// On a Master, on a node whose interface is at fault, or before Run, it does nothing. Safe
// for concurrent use; it does not wait.
func (r *Router) TakeOver(reason string) {
	r.enqueue("take over", func() {
		if r.m.Status().State == StateBackup {
			r.log.Info("taking over on request", "reason", reason)
		}
		r.step(r.m.TakeOver(r.now(), reason))
	})
}

// Reannounce makes a Master send a fresh burst of gratuitous ARPs for its virtual addresses
// (GARPCount, GARPInterval apart), unless a burst is running: for when the caller learns
// that another node may have held them meanwhile (the peer is back after a split brain) and
// the segment's ARP caches may point at it. On a Backup, or before Run, it does nothing.
// Safe for concurrent use; it does not wait.
func (r *Router) Reannounce(reason string) {
	r.enqueue("reannounce", func() {
		if r.m.Status().State == StateMaster {
			r.reassert(Reassert{Reason: reason})
		}
	})
}

// Reload applies the settings that can change while the Router runs, for a configuration
// reload (SIGHUP). rc is validated first: an invalid one changes nothing and the error
// (wrapping ErrRuntimeConfig) says why. The new values are applied by the Run goroutine, in
// order with the other requests: a Master announces a new priority at once; Preempt applies
// to the next advert; GARPCount and GARPInterval to the next burst of gratuitous ARPs;
// GARPRefresh at once (a Master between refresh rounds has its next one GARPRefresh after the
// reload). Safe for concurrent use; it does not wait.
func (r *Router) Reload(rc RuntimeConfig) error {
	rc, err := rc.validate()
	if err != nil {
		return err
	}
	r.enqueue("reload", func() {
		r.log.Info("runtime configuration reloaded", "priority", rc.Priority, "preempt", rc.Preempt,
			"garp_count", rc.GARPCount, "garp_interval", rc.GARPInterval, "garp_refresh", rc.GARPRefresh)
		r.cfg.Preempt, r.cfg.GARPCount, r.cfg.GARPInterval = rc.Preempt, rc.GARPCount, rc.GARPInterval
		r.cfg.GARPRefresh = rc.GARPRefresh
		r.garp.configure(time.Now(), rc.GARPCount, rc.GARPInterval, rc.GARPRefresh)
		r.armGARP()
		r.m.SetPreempt(rc.Preempt)
		r.applyPriority(rc.Priority) // publishes
	})
	return nil
}

// Run runs the virtual router until ctx is cancelled. Then a Master sends one advert with
// priority 0, so that a Backup takes over after Skew_Time instead of Master_Down_Interval
// (RFC 3768 section 6.4.3), and removes the addresses it added; Run closes its I/O and returns
// nil. Run may be called once.
func (r *Router) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("vrrp: Router.Run called twice")
	}
	if r.closed.Load() {
		return errors.New("vrrp: Router.Run called after Close")
	}
	inbox := make(chan received, 16)
	stop := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() { r.read(inbox, stop) })
	defer func() {
		close(stop)
		if err := r.Close(); err != nil { // also unblocks the reader's Receive
			r.log.Warn("releasing resources", "err", err)
		}
		reader.Wait()
	}()

	timer := r.protocolTimer()
	defer timer.Close()
	r.garpTimer = time.NewTimer(time.Hour)
	r.garpTimer.Stop()
	defer r.garpTimer.Stop()

	r.log.Info("virtual router starting", "priority", r.cfg.Priority, "primary", r.cfg.Primary,
		"virtual_ips", r.cfg.VirtualIPs, "unicast", r.cfg.Unicast, "virtual_mac", r.cfg.VirtualMAC)
	r.applyOps() // a priority or passive mode set before Run takes effect from the start
	var linkPoll <-chan time.Time
	var linkChanged <-chan struct{}
	var linkTicker *time.Ticker
	var pollEvery time.Duration
	if r.link != nil {
		r.checkLink() // a node whose interface is unusable does not start
		// The poll backs up the netlink notifications (linkChanged): every 10 s while they
		// work, else at most once a second (two netlink round trips on this goroutine every
		// 10 ms of a version 3 advert interval would only delay the adverts).
		pollEvery = r.linkPollInterval()
		linkTicker = time.NewTicker(pollEvery)
		defer linkTicker.Stop()
		linkPoll, linkChanged = linkTicker.C, r.link.changed()
	}
	r.step(r.m.Start(r.now()))
	for {
		r.armTimer(timer)
		select {
		case <-ctx.Done():
			r.step(r.m.Shutdown(r.now()))
			if r.held || r.removeFailed {
				r.release() // a last try, whatever the Machine's state
				r.flush()
			}
			r.log.Info("virtual router stopped")
			return nil
		case rx := <-inbox:
			r.receive(rx)
		case <-timer.C():
			r.fired(inbox)
		case <-r.garpTimer.C:
			if r.garp.due(time.Now()) {
				r.announce()
			}
			r.armGARP()
		case <-r.wake:
			r.applyOps()
		case <-linkPoll:
			r.checkLink()
		case <-linkChanged:
			r.checkLink()
			if d := r.linkPollInterval(); d != pollEvery {
				pollEvery = d
				linkTicker.Reset(d)
			}
		}
	}
}

// armTimer sets the protocol timer to the Machine's deadline, or takeoverLead before it when
// Tick at that deadline makes this router Master.
func (r *Router) armTimer(timer protocolTimer) {
	d := r.m.Deadline()
	if d.IsZero() {
		timer.Stop()
		return
	}
	if at, ok := r.m.TakesOverAt(); ok {
		d = at.Add(-r.takeoverLead)
	}
	timer.Reset(time.Until(d))
}

// receive hands one received packet to the Machine, dated with its arrival.
func (r *Router) receive(rx received) {
	now := r.at(rx.at)
	r.step(r.m.Receive(now, rx.in))
	all, zero := r.m.ReceivedCounts()
	r.mu.Lock()
	r.status.Adverts.Received, r.status.Adverts.ReceivedPriorityZero = all, zero
	r.mu.Unlock()
	r.reportDrops(now, rx.in.Src)
}

// fired handles the protocol timer: the Machine's Tick at its deadline, after waiting for the
// deadline when the timer woke Run early for a takeover.
func (r *Router) fired(inbox <-chan received) {
	if at, ok := r.m.TakesOverAt(); ok && time.Now().Before(at) && !r.readyForTakeover(at, inbox) {
		return // an advert arrived in the lead: no takeover at this deadline
	}
	now := r.now()
	if late := now.Sub(r.m.Deadline()); late > 10*time.Millisecond {
		// A starved process turns into a late takeover or late adverts; say so.
		r.log.Warn("timer fired late", "late", late)
	}
	r.step(r.m.Tick(now))
}

// readyForTakeover runs in the takeoverLead before a takeover deadline at: the Addresser
// prepares (see [Addresser]), then Run waits for the deadline on the CPU, looking at the clock
// and handing adverts that arrive meanwhile to the Machine. It returns false when one of them
// moved or cancelled the takeover. Waking early and waiting awake moves the operating
// system's wake-up latency (0.2-0.4 ms on an idle virtual machine, milliseconds on a loaded
// one) before the deadline instead of after it: the Machine still takes over at the deadline
// of RFC 3768 section 6.4.2 (RFC 9568 section 6.4.2), never before it. It costs at most
// takeoverLead of CPU per takeover, and nothing while a Master advertises: a running Backup
// whose adverts arrive never reaches its deadline.
func (r *Router) readyForTakeover(at time.Time, inbox <-chan received) bool {
	if p, ok := r.addrs.(interface{ Prepare([]netip.Prefix) }); ok {
		p.Prepare(r.cfg.VirtualIPs)
	}
	wait := r.spinWait
	if wait == nil {
		wait = runtime.Gosched
	}
	for time.Now().Before(at) {
		select {
		case rx := <-inbox:
			r.receive(rx)
			if next, ok := r.m.TakesOverAt(); !ok || !next.Equal(at) {
				return false
			}
		default:
			wait()
		}
	}
	return true
}

// checkLink takes the node out of the protocol while its interface cannot carry it (see
// [Machine.Fault]) and back in when it can again.
func (r *Router) checkLink() {
	cause, why := r.link.check()
	r.followPrimary()
	fault := r.m.Status().Fault
	switch {
	case why == fault:
		return
	case why == "":
		r.log.Info("interface usable again; rejoining", "was", fault)
		r.step(r.m.ClearFault(r.now(), fmt.Sprintf("interface %s back", r.cfg.Interface)))
	default:
		r.log.Error("interface unusable; leaving the protocol until it is back", "fault", why)
		r.step(r.m.Fault(r.now(), cause, why))
	}
}

// followPrimary takes over the Primary the link watcher's I/O sends from now, when it
// changed: the Machine's tie-breaker and MasterIP, the adverts' pseudo-header.
func (r *Router) followPrimary() {
	pf, ok := r.link.(primaryFollower)
	if !ok {
		return
	}
	p := pf.primary()
	if !p.IsValid() || p == r.cfg.Primary {
		return
	}
	if err := r.m.SetPrimary(p); err != nil {
		r.log.Error("the interface's new primary address cannot be used", "primary", p, "err", err)
		return
	}
	r.log.Info("primary address changed", "primary", p, "was", r.cfg.Primary)
	r.cfg.Primary = p
	r.publish()
}

// protocolTimer makes the timer of Run: the precise one Dial asks for, or a time.Timer.
func (r *Router) protocolTimer() protocolTimer {
	if r.newTimer != nil {
		t, err := r.newTimer()
		if err == nil {
			return t
		}
		r.log.Warn("precise timer unavailable; protocol timers may fire up to 1 ms late", "err", err)
	}
	return newStdTimer()
}

// read feeds inbox from the Conn until stop is closed. Receive errors other than a closed
// socket (ENOBUFS, a vanished interface) are logged and retried with a capped backoff, so a
// flapping interface neither kills the Router nor spins.
// received is one packet the reader handed to Run, with its arrival on the monotonic clock.
type received struct {
	in Inbound
	at time.Time
}

// now is the time for the next Machine call: the clock, or the last time given to the Machine
// when that is later, so that the Machine never sees time go back (see at).
func (r *Router) now() time.Time { return r.at(time.Now()) }

// at is t, or the last time given to the Machine when that is later. A received advert is
// handed to the Machine with the time the kernel received it (Inbound.Arrived, turned into a
// monotonic reading by [arrival] in the reader), not the time the reader goroutine got it
// from the socket nor the time Run gets to it one goroutine hop later: Master_Down_Timer then
// runs from the advert's arrival instead of starting late by the wake-ups' delay on a loaded
// machine.
func (r *Router) at(t time.Time) time.Time {
	if t.Before(r.lastNow) {
		t = r.lastNow
	}
	r.lastNow = t
	return t
}

func (r *Router) read(inbox chan<- received, stop <-chan struct{}) {
	backoff := time.Duration(0)
	for {
		in, err := r.conn.Receive()
		if err != nil {
			select {
			case <-stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			r.log.Warn("receiving adverts failed", "err", err, "retry_in", backoff)
			select {
			case <-stop:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		rx := received{in: in, at: arrival(time.Now(), in.Arrived)}
		select {
		case inbox <- rx:
		case <-stop:
			return
		}
	}
}

func (r *Router) applyPriority(p uint8) {
	if p == 0 {
		r.log.Warn("ignoring priority 0: it is reserved for a resigning Master (call Resign instead)")
		return
	}
	if p != r.m.Status().Priority {
		r.log.Info("priority changed", "priority", p)
	}
	r.step(r.m.SetPriority(r.now(), p))
}

// step performs a Machine's actions in order and publishes the new status.
func (r *Router) step(actions []Action) {
	// A node becoming Master takes the virtual addresses before its first advert leaves: the
	// address is what phones and trunks need, and the advert follows within the same step
	// (RFC 3768 section 6.4.2 lists both as one transition). keepalived sends its advert
	// first (vrrp_state_master_tx); both send the gratuitous ARPs after the advert.
	for i, a := range actions {
		if t, ok := a.(Transition); ok && t.To == StateMaster && i > 0 {
			reordered := make([]Action, 0, len(actions))
			reordered = append(reordered, t)
			reordered = append(reordered, actions[:i]...)
			actions = append(reordered, actions[i+1:]...)
			break
		}
	}
	var reports []func()
	for _, a := range actions {
		switch a := a.(type) {
		case SendAdvert:
			r.send(&a.Advert)
		case Transition:
			reports = append(reports, r.transition(a))
		case Reassert:
			r.reassert(a)
		case Held:
			if a.At.Equal(a.Since) {
				r.log.Warn("no advert within Master_Down_Interval; held as Backup by the caller", "reason", a.Reason)
			}
			if r.cfg.OnHeld != nil {
				r.cfg.OnHeld(a)
			}
		default:
			r.log.Error("unknown action from the state machine", "action", fmt.Sprintf("%T", a))
		}
	}
	r.retry()
	if r.announceDue {
		// The first gratuitous ARP of a takeover goes after the first advert: the advert is
		// what stops the other Backups' Master_Down_Timers, and the ARP, a send per address,
		// would otherwise delay it (by about 0.3 ms in the lab). keepalived orders them so too.
		r.announceDue = false
		r.announce()
		r.armGARP()
	}
	// The log lines and OnEvent of the step's transitions come last: the addresses, the
	// advert and the first gratuitous ARP are what the segment waits for.
	for _, report := range reports {
		report()
	}
	r.publish()
	r.flush()
}

// reportDrops logs the packets the Machine just refused, by reason and sender, rate-limited
// per reason by dropLogEvery. It reads the status this goroutine itself published.
func (r *Router) reportDrops(now time.Time, src netip.Addr) {
	dropped := r.status.Dropped
	for reason, n := range dropped {
		if n == r.seenDropped[reason] {
			continue
		}
		if last, ok := r.dropLogged[reason]; !ok || now.Sub(last) >= dropLogEvery {
			r.log.Warn("advert dropped", "reason", reason, "src", src, "total", n)
			if r.dropLogged == nil {
				r.dropLogged = make(map[string]time.Time)
			}
			r.dropLogged[reason] = now
		}
	}
	r.seenDropped = dropped
}

// flush runs the Addresser's slow bookkeeping, if it has any (see [Addresser]), and
// publishes its failure in Status.RecordError, logging it when it changes.
func (r *Router) flush() {
	f, ok := r.addrs.(interface{ Flush() error })
	if !ok {
		return
	}
	msg := ""
	if err := f.Flush(); err != nil {
		msg = err.Error()
	}
	if msg == r.recordErr {
		return
	}
	if msg != "" {
		r.log.Warn("address record not on disk; running with it in memory", "err", msg)
	} else {
		r.log.Info("address record on disk again")
	}
	r.recordErr = msg
	r.publish()
}

// send marshals a and sends it to every destination: once for version 2, once per
// destination for version 3, whose checksum covers the destination (RFC 9568 section 5.2.8).
// A destination that cannot be reached does not keep the others from receiving it.
func (r *Router) send(a *Advertisement) {
	var errs []error
	var b []byte
	for i, dst := range r.dsts {
		if i == 0 || a.Version == 3 {
			var err error
			if b, err = a.Marshal(PseudoHeader{Src: r.cfg.Primary, Dst: dst}); err != nil {
				errs = append(errs, err)
				break
			}
		}
		err := r.conn.Send(b, dst)
		if err != nil {
			errs = append(errs, err)
		}
		r.countSent(a.Priority, err)
	}
	err := errors.Join(errs...)
	switch {
	case err != nil && !r.sendFailing:
		r.sendFailing = true
		r.log.Error("sending advert failed", "err", err, "priority", a.Priority)
	case err == nil && r.sendFailing:
		r.sendFailing = false
		r.log.Info("sending adverts works again")
	}
}

// countSent counts one advert handed to the kernel (Status.Adverts).
func (r *Router) countSent(priority uint8, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &r.status.Adverts
	switch {
	case err != nil:
		c.SendErrors++
	case priority == 0:
		c.Sent++
		c.SentPriorityZero++
	default:
		c.Sent++
	}
}

// transition installs or releases the addresses for t and returns its report: the log lines
// and the Event, which step sends once the step's adverts and first ARP have left.
func (r *Router) transition(t Transition) (report func()) {
	var err error
	var installed time.Duration
	switch {
	case t.To == StateMaster && !r.master:
		r.master = true
		installed, err = r.install()
	case t.To != StateMaster && r.master:
		r.master = false
		err = r.release()
	}
	ev := Event{From: t.From, To: t.To, Cause: t.Cause, Reason: t.Reason, At: t.At, MasterIP: r.m.Status().MasterIP, Err: err}
	return func() {
		r.logInstall(installed, err)
		r.log.Info("state transition", "from", t.From, "to", t.To, "cause", t.Cause, "reason", t.Reason, "master", ev.MasterIP)
		r.cfg.OnEvent(ev)
	}
}

// install adds the virtual addresses and starts the gratuitous ARP burst once they are
// confirmed: announcing an address this node cannot answer for would black-hole it. It
// returns how long Add took; the caller logs the outcome (logInstall).
func (r *Router) install() (time.Duration, error) {
	start := time.Now()
	err := r.addrs.Add(r.cfg.VirtualIPs)
	took := time.Since(start)
	if err != nil {
		r.installFailed, r.lastRetry = true, time.Now()
		return took, err
	}
	r.installFailed, r.removeFailed = false, false
	r.held = true
	r.garp.burst(time.Now())
	r.announceDue = true // by step, once this step's advert has left
	return took, nil
}

// logInstall logs an install's outcome; took zero means there was none.
func (r *Router) logInstall(took time.Duration, err error) {
	switch {
	case err != nil && r.installFailed:
		r.log.Error("installing virtual addresses failed; retrying every advertisement interval", "err", err)
	case err == nil && took > 0:
		r.log.Info("virtual addresses installed", "virtual_ips", r.cfg.VirtualIPs, "took", took)
	}
}

// release stops the gratuitous ARP burst and removes the addresses this node added.
func (r *Router) release() error {
	r.garp.stop()
	r.armGARP()
	r.installFailed = false
	err := r.addrs.Remove(r.cfg.VirtualIPs)
	if err != nil {
		r.removeFailed, r.lastRetry = true, time.Now()
		r.log.Error("removing virtual addresses failed; retrying every advertisement interval", "err", err)
		return err
	}
	r.removeFailed = false
	if r.held {
		r.log.Info("virtual addresses removed", "virtual_ips", r.cfg.VirtualIPs)
	}
	r.held = false
	return nil
}

// retry repeats a failed Add (while Master) or Remove (while not), at most once per
// advertisement interval so that a burst of packets does not become a burst of netlink calls.
func (r *Router) retry() {
	if !r.installFailed && !r.removeFailed {
		return
	}
	now := time.Now()
	if now.Sub(r.lastRetry) < r.cfg.AdvertInterval {
		return
	}
	r.lastRetry = now
	switch {
	case r.master && r.installFailed:
		r.logInstall(r.install())
	case !r.master && r.removeFailed:
		r.release()
	}
}

// reassert starts a new gratuitous ARP burst for the held addresses, unless one is still
// running: another Master advertising every interval then does not stack bursts.
func (r *Router) reassert(a Reassert) {
	if !r.held || !r.garp.reassert(time.Now()) {
		return
	}
	r.log.Warn("announcing the virtual addresses again", "reason", a.Reason)
	r.announce()
	r.armGARP()
}

// announce sends one round of gratuitous ARP, the one the schedule just asked for.
func (r *Router) announce() {
	if !r.held {
		return
	}
	if err := r.arp.Announce(r.vipIPs); err != nil {
		r.log.Warn("gratuitous ARP failed", "err", err)
	}
}

// armGARP points the gratuitous ARP timer at the schedule's deadline.
func (r *Router) armGARP() {
	if r.garpTimer == nil { // before Run: Run makes the timer
		return
	}
	r.garpTimer.Stop()
	if d := r.garp.deadline(); !d.IsZero() {
		r.garpTimer.Reset(time.Until(d))
	}
}

func (r *Router) publish() {
	ms := r.m.Status()
	s := Status{
		State:    ms.State,
		Priority: ms.Priority,
		MasterIP: ms.MasterIP,

		MasterAdverInterval: ms.MasterAdverInterval,
		Since:               ms.Since,
		Transitions:         ms.Transitions,
		Dropped:             ms.Dropped, // a copy already
		Fault:               ms.Fault,
		RecordError:         r.recordErr,

		Preempt:           ms.Preempt,
		Passive:           ms.Passive,
		PreemptSuppressed: ms.PreemptSuppressed,
		Held:              ms.Held,
		LastAdvert:        ms.LastAdvert,
	}
	if r.held {
		s.VirtualIPs = r.cfg.VirtualIPs
	}
	r.mu.Lock()
	s.Adverts = r.status.Adverts // counted as they happen (countSent, receive)
	r.status = s
	r.mu.Unlock()
}

// Close releases the Router's I/O: the Conn, the Addresser and Announcer when they are
// io.Closers, and what Dial set up (the macvlan, the netlink handle). Run calls it on return;
// call it only for a Router whose Run was never called. It does not remove addresses: only
// Run installs them, and Run removes them before it returns.
func (r *Router) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		errs := []error{r.conn.Close()}
		for _, x := range []any{r.arp, r.addrs} {
			if c, ok := x.(io.Closer); ok {
				errs = append(errs, c.Close())
			}
		}
		for _, c := range r.closers {
			errs = append(errs, c())
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}
