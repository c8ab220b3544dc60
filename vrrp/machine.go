package vrrp

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// State is a VRRP router state (RFC 3768 section 6.4).
type State uint8

const (
	// StateInitialize: not participating; waiting for Start (section 6.4.1).
	StateInitialize State = iota
	// StateBackup: monitoring the Master; takes over when Master_Down_Timer fires (6.4.2).
	StateBackup
	// StateMaster: owns the virtual addresses and advertises every Advertisement_Interval
	// (6.4.3).
	StateMaster
)

func (s State) String() string {
	switch s {
	case StateInitialize:
		return "initialize"
	case StateBackup:
		return "backup"
	case StateMaster:
		return "master"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// ErrMachineConfig is wrapped by every error NewMachine returns.
var ErrMachineConfig = errors.New("vrrp: invalid machine configuration")

// DefaultAdvertInterval is the default Advertisement_Interval of RFC 3768 and RFC 9568
// (section 6.1 of both), used when MachineConfig.AdvertInterval is zero.
const DefaultAdvertInterval = time.Second

// MachineConfig is the static configuration of one virtual router on one node (RFC 3768
// and RFC 9568 section 6.1 parameters).
type MachineConfig struct {
	// Version is the protocol: 2 (RFC 3768, IPv4 only) or 3 (RFC 9568, IPv4 or IPv6, the
	// family of Primary); zero means 2. A Machine sends and accepts only its own version.
	Version  uint8
	VRID     uint8 // 1..255
	Priority uint8 // 1..254, or 255 for the owner of the virtual addresses
	// AdvertInterval is Advertisement_Interval: for version 2 whole seconds, 1..255; for
	// version 3 a multiple of 10 ms in 10 ms..40.95 s. Zero means 1 s.
	AdvertInterval time.Duration
	// Preempt is Preempt_Mode: a Backup with a higher priority than the Master takes over.
	// The zero value is false (RFC 3768's default is true). Priority 255 always preempts.
	Preempt bool
	// Primary is this node's own address on the interface: the source of its adverts, the
	// tie-break between equal priorities and the filter for its own looped-back adverts. Its
	// family is the virtual router's: IPv4 for version 2; IPv4 or IPv6 for version 3, and then
	// an IPv6 Primary is the interface's link-local address (RFC 9568 section 5.1.2.1).
	Primary netip.Addr
	// VirtualIPs are 1..255 addresses of Primary's family, as advertised; compared as a set.
	VirtualIPs []netip.Addr
	// AuthType is AuthNone or AuthSimple (RFC 2338 plain text, for keepalived's
	// "auth_type PASS"); received adverts must carry the same type, and for AuthSimple the same
	// AuthData. AuthData must be zero with AuthNone. Version 3 has no authentication: AuthNone
	// only.
	AuthType AuthType
	AuthData [AuthDataLen]byte
	// Peers, when not empty, selects unicast mode: adverts are accepted only from these
	// addresses, of Primary's family. Empty means multicast (224.0.0.18 or ff02::12) and any
	// source.
	Peers []netip.Addr
}

// Inbound is one received VRRP packet as the I/O layer saw it.
type Inbound struct {
	// Src and Dst are the IP source and destination. Version 3 needs both for the checksum
	// (the pseudo-header, RFC 9568 section 5.2.8); the receive path takes Dst from the
	// IP_PKTINFO (IPV6_PKTINFO) control message. Dst is not otherwise checked.
	Src, Dst netip.Addr
	TTL      int    // IP TTL (section 7.1: must be 255)
	Payload  []byte // the IP payload: the VRRP message; not retained by the Machine

	// Arrived is when the kernel received the datagram (SO_TIMESTAMPNS, a CLOCK_REALTIME
	// reading without a monotonic one), or zero when the Conn cannot tell. The Machine does
	// not read it: the Router dates the advert with it (see [arrival]) before calling Receive.
	Arrived time.Time
}

// Action is something the caller of a Machine must do, in the order returned.
type Action interface{ isAction() }

// SendAdvert: send Advert to the group (or to each unicast peer) with IP TTL 255 and the
// Primary address as source. The Machine has already scheduled the next one. A version 3
// Advert is marshalled once per destination: its checksum covers the source and the
// destination ([Advertisement.Marshal] with a [PseudoHeader]).
type SendAdvert struct{ Advert Advertisement }

// Transition: the Machine changed state. Becoming Master means: add the virtual addresses and
// send gratuitous ARPs (section 6.4.2); leaving Master means: remove them. When a SendAdvert
// and a Transition are returned together, the SendAdvert comes first, as in RFC 3768's order
// of steps ("Send an ADVERTISEMENT ... Transition to the {Master|Initialize} state").
type Transition struct {
	From, To State
	Cause    Cause  // for programs: why, as one of a fixed set
	Reason   string // for people: why, with the peer's address and priority where relevant
	At       time.Time
}

// Cause says why a Transition happened, so that the appliance can tell a failover from a
// preemption, a resignation or a fault without parsing Reason. Its String is the short form
// used in logs and events.
type Cause uint8

const (
	// CauseUnknown is the zero value; no Transition carries it.
	CauseUnknown Cause = iota
	// CauseStart: Start made this node Backup.
	CauseStart
	// CauseOwner: the address owner (priority 255) became Master at Start (section 6.4.1).
	CauseOwner
	// CauseMasterDown: Master_Down_Timer fired: no advert from the Master within
	// Master_Down_Interval (section 6.4.2).
	CauseMasterDown
	// CausePriorityZero: Master_Down_Timer fired Skew_Time after the Master resigned with a
	// priority-0 advert (section 6.4.2).
	CausePriorityZero
	// CausePreempting: Master_Down_Timer fired while this Backup, with preemption, ignored a
	// Master of lower priority.
	CausePreempting
	// CausePreempted: a Master received an advert of higher priority (or equal priority from a
	// greater address) and became Backup (section 6.4.3).
	CausePreempted
	// CauseResigned: the operator made the Master resign ([Machine.Resign]).
	CauseResigned
	// CauseTakeOver: the operator made the Backup take over ([Machine.TakeOver]).
	CauseTakeOver
	// CauseInterfaceGone: the interface was deleted (or recreated with another index).
	CauseInterfaceGone
	// CauseInterfaceDown: the interface is administratively down, has no carrier, or lacks
	// the Primary address.
	CauseInterfaceDown
	// CauseInterfaceBack: the interface is usable again; the node rejoins.
	CauseInterfaceBack
	// CauseShutdown: Shutdown.
	CauseShutdown
)

var causeNames = [...]string{
	CauseUnknown:       "unknown",
	CauseStart:         "start",
	CauseOwner:         "address owner",
	CauseMasterDown:    "master down",
	CausePriorityZero:  "priority 0 from master",
	CausePreempting:    "preempting lower priority",
	CausePreempted:     "preempted by higher priority",
	CauseResigned:      "resigned",
	CauseTakeOver:      "takeover",
	CauseInterfaceGone: "interface gone",
	CauseInterfaceDown: "interface down",
	CauseInterfaceBack: "interface back",
	CauseShutdown:      "shutdown",
}

func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return fmt.Sprintf("Cause(%d)", uint8(c))
}

// Reassert: this Master heard a Master it outranks (section 6.4.3) and stays Master; send a
// fresh burst of gratuitous ARPs for the virtual addresses, since the segment may have
// learned the other Master's MAC for them. No state changes.
type Reassert struct{ Reason string }

func (SendAdvert) isAction() {}
func (Transition) isAction() {}
func (Reassert) isAction()   {}

// Drop reasons: the keys of MachineStatus.Dropped. Each is one receive check of RFC 3768
// section 7.1, or one of this implementation's additions ("source", "own", "peer").
const (
	DropTTL       = "ttl"       // IP TTL is not 255
	DropSource    = "source"    // IP source is not of the Primary's family (IPv4 for version 2)
	DropVersion   = "version"   // not the Machine's version
	DropLength    = "length"    // shorter or longer than its address count says
	DropType      = "type"      // not an ADVERTISEMENT
	DropChecksum  = "checksum"  // checksum does not verify
	DropVRID      = "vrid"      // another virtual router (or VRID 0)
	DropOwn       = "own"       // our own advert, looped back (Src == Primary)
	DropPeer      = "peer"      // unicast mode: the source is not a configured peer
	DropAuthType  = "auth_type" // auth type differs from ours (or is unknown)
	DropAuthData  = "auth_data" // plain-text password differs from ours
	DropInterval  = "interval"  // version 2: advertisement interval differs from ours (or is 0); version 3: 0
	DropAddresses = "addresses" // address list differs from ours, sender not the owner
	DropMalformed = "malformed" // any other parse failure
)

// MachineStatus is a snapshot of a Machine.
type MachineStatus struct {
	State    State
	Priority uint8
	// MasterAdverInterval is the advertisement interval the Backup's Master_Down_Interval is
	// computed from: for version 3 the Master's, learned from its adverts (RFC 9568 section
	// 6.1, Master_Adver_Interval), our own Advertisement_Interval until one arrives and while
	// Master; for version 2 always our own.
	MasterAdverInterval time.Duration
	// MasterIP is the current Master's address: our own Primary when Master, the source of
	// the last valid advert with a non-zero priority when Backup, invalid when unknown (after
	// Start, after a priority-0 advert, in Initialize).
	MasterIP    netip.Addr
	Since       time.Time         // time of the last transition
	Transitions uint64            // number of transitions since NewMachine
	Dropped     map[string]uint64 // packets that failed validation, by Drop* reason
	// Received counts the adverts that passed the section 7.1 checks (in Backup or Master),
	// ReceivedPriorityZero those of them with priority 0 (a Master resigning).
	Received, ReceivedPriorityZero uint64
	Preempt                        bool // Preempt_Mode as configured (see SetPreempt)
	// Passive: in Backup this node never takes over on its own (see SetPassive).
	Passive bool
	// PreemptSuppressed: after Resign this node does not preempt, until it next becomes
	// Master through Master_Down_Timer or TakeOver.
	PreemptSuppressed bool
	// Fault says why the node cannot take part (see Fault), empty when it can.
	Fault string
	// Held: a Backup whose Master_Down_Timer fired while held (SetHold), staying Backup.
	Held bool
	// LastAdvert is when this node, in Backup, last accepted a valid advert (zero: never).
	LastAdvert time.Time
}

// Machine is the RFC 3768 (version 2) or RFC 9568 (version 3) section 6.4 state machine of one
// virtual router, with the receive validation of section 7.1. It is pure: it reads no clock, does no I/O and starts no
// goroutine. The caller passes the current time to every method, performs the returned
// Actions in order, and calls Tick when Deadline is reached.
//
// A Machine is not safe for concurrent use; the Router serialises calls.
type Machine struct {
	cfg      MachineConfig
	interval time.Duration // Advertisement_Interval, ours
	// masterInterval is Master_Adver_Interval (version 3): the Master's interval, from which
	// Skew_Time and Master_Down_Interval are computed. Always interval in version 2.
	masterInterval time.Duration
	vips           map[netip.Addr]int // virtual address -> index in cfg.VirtualIPs
	peers          map[netip.Addr]bool

	priority uint8
	state    State
	// deadline is Master_Down_Timer in Backup and Adver_Timer in Master; zero in Initialize.
	deadline time.Time
	// downReason and downCause say why deadline was last set in Backup, for the Transition
	// to Master.
	downReason   string
	downCause    Cause
	started      bool   // Start was called and Shutdown was not since
	fault        string // why the node cannot take part; empty when it can
	passive      bool
	noPreempt    bool // after Resign, until the next becomeMaster
	masterIP     netip.Addr
	since        time.Time
	transitions  uint64
	dropped      map[string]uint64
	received     uint64 // valid adverts (they passed Receive's checks)
	receivedZero uint64 // of received, priority 0
	holdState           // SetHold (hold.go)
}

// NewMachine validates cfg and returns a Machine in Initialize. cfg's slices are copied.
func NewMachine(cfg MachineConfig) (*Machine, error) {
	bad := func(format string, args ...any) (*Machine, error) {
		return nil, fmt.Errorf("%w: %s", ErrMachineConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Version == 0 {
		cfg.Version = 2
	}
	if cfg.Version != 2 && cfg.Version != 3 {
		return bad("version %d: must be 2 (RFC 3768) or 3 (RFC 9568)", cfg.Version)
	}
	if cfg.VRID == 0 {
		return bad("VRID 0: must be 1..255")
	}
	if cfg.Priority == 0 {
		return bad("priority 0: must be 1..255 (0 is only sent, by a Master that resigns)")
	}
	if cfg.AdvertInterval == 0 {
		cfg.AdvertInterval = DefaultAdvertInterval
	}
	if err := checkAdvertInterval(cfg.Version, cfg.AdvertInterval); err != nil {
		return bad("advert interval: %v", err)
	}
	cfg.Primary = cfg.Primary.Unmap()
	if err := checkPrimary(cfg.Version, cfg.Primary); err != nil {
		return bad("%v", err)
	}
	vips, err := machineVIPs(&cfg)
	if err != nil {
		return bad("%v", err)
	}
	if err := checkAuth(cfg.Version, cfg.AuthType, cfg.AuthData); err != nil {
		return bad("%v", err)
	}
	peers, err := machinePeers(&cfg)
	if err != nil {
		return bad("%v", err)
	}
	return &Machine{
		cfg:            cfg,
		interval:       cfg.AdvertInterval,
		masterInterval: cfg.AdvertInterval,
		vips:           vips,
		peers:          peers,
		priority:       cfg.Priority,
		state:          StateInitialize,
		dropped:        make(map[string]uint64),
	}, nil
}

// checkAdvertInterval checks an Advertisement_Interval against what the version carries.
func checkAdvertInterval(version uint8, d time.Duration) error {
	if version == 3 {
		_, err := v3IntervalField(d)
		return err
	}
	_, err := v2IntervalByte(d)
	return err
}

// checkPrimary checks the Primary address (already unmapped) for the version.
func checkPrimary(version uint8, ip netip.Addr) error {
	switch {
	case ip.Is4():
		return nil
	case version == 2 || !ip.Is6():
		return fmt.Errorf("primary address %v: must be an IPv4 address%s", ip, map[bool]string{true: " or, for version 3, an IPv6 link-local one"}[version == 3])
	case !ip.IsLinkLocalUnicast():
		return fmt.Errorf("primary address %v: an IPv6 Primary must be the interface's link-local address (RFC 9568 section 5.1.2.1)", ip)
	}
	return nil
}

// sameFamily reports whether a and b are both IPv4 or both IPv6.
func sameFamily(a, b netip.Addr) bool { return a.Is4() == b.Is4() && a.Is6() == b.Is6() }

// familyName is "IPv4" or "IPv6", for messages.
func familyName(ip netip.Addr) string {
	if ip.Is6() {
		return "IPv6"
	}
	return "IPv4"
}

// machineVIPs unmaps and checks cfg.VirtualIPs (a copy replaces them) and indexes them.
func machineVIPs(cfg *MachineConfig) (map[netip.Addr]int, error) {
	if len(cfg.VirtualIPs) == 0 || len(cfg.VirtualIPs) > 255 {
		return nil, fmt.Errorf("%d virtual addresses: must be 1..255", len(cfg.VirtualIPs))
	}
	cfg.VirtualIPs = slices.Clone(cfg.VirtualIPs)
	vips := make(map[netip.Addr]int, len(cfg.VirtualIPs))
	for i, ip := range cfg.VirtualIPs {
		ip = ip.Unmap()
		if !ip.IsValid() || !sameFamily(ip, cfg.Primary) {
			return nil, fmt.Errorf("virtual address %v: must be an %s address, as the primary address %v", cfg.VirtualIPs[i], familyName(cfg.Primary), cfg.Primary)
		}
		if _, dup := vips[ip]; dup {
			return nil, fmt.Errorf("virtual address %v listed twice", ip)
		}
		cfg.VirtualIPs[i] = ip
		vips[ip] = i
	}
	return vips, nil
}

// checkAuth checks the authentication settings for the version.
func checkAuth(version uint8, t AuthType, data [AuthDataLen]byte) error {
	switch {
	case version == 3 && t != AuthNone:
		return fmt.Errorf("auth type %v: version 3 has no authentication (RFC 9568 section 9)", t)
	case t == AuthNone && data != ([AuthDataLen]byte{}):
		return errors.New("auth data set but auth type is none")
	case t != AuthNone && t != AuthSimple:
		return fmt.Errorf("auth type %v: only none and simple (plain text) are supported", t)
	}
	return nil
}

// machinePeers unmaps and checks cfg.Peers (a copy replaces them) and indexes them; nil for
// multicast.
func machinePeers(cfg *MachineConfig) (map[netip.Addr]bool, error) {
	cfg.Peers = slices.Clone(cfg.Peers)
	if len(cfg.Peers) == 0 {
		return nil, nil
	}
	peers := make(map[netip.Addr]bool, len(cfg.Peers))
	for i, ip := range cfg.Peers {
		ip = ip.Unmap()
		if !ip.IsValid() || !sameFamily(ip, cfg.Primary) {
			return nil, fmt.Errorf("peer %v: must be an %s address, as the primary address %v", cfg.Peers[i], familyName(cfg.Primary), cfg.Primary)
		}
		if ip == cfg.Primary {
			return nil, fmt.Errorf("peer %v is our own primary address", ip)
		}
		cfg.Peers[i] = ip
		peers[ip] = true
	}
	return peers, nil
}

// SkewTime is Skew_Time = (256 - Priority) / 256 seconds (RFC 3768 section 6.1), the version 2
// skew. It is exact in nanoseconds: 1 s / 256 = 3906250 ns.
func SkewTime(priority uint8) time.Duration {
	return time.Duration(256-int(priority)) * (time.Second / 256)
}

// MasterDownInterval is Master_Down_Interval = 3 * Advertisement_Interval + Skew_Time
// (RFC 3768 section 6.1), the version 2 interval.
func MasterDownInterval(advertInterval time.Duration, priority uint8) time.Duration {
	return 3*advertInterval + SkewTime(priority)
}

// SkewTimeV3 is the version 3 Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256
// (RFC 9568 section 6.1). The RFC counts in centiseconds; the division is done in nanoseconds
// (truncated, though for any multiple of 10 ms it is exact to the half nanosecond), not in
// whole centiseconds, which at 10 ms adverts would give every priority a Skew_Time of 0 and so
// no ordering between Backups. keepalived divides in microseconds. Priority 100 at 100 ms:
// 60.9375 ms; at 10 ms: 6.09375 ms.
func SkewTimeV3(priority uint8, masterAdverInterval time.Duration) time.Duration {
	return time.Duration(256-int(priority)) * masterAdverInterval / 256
}

// MasterDownIntervalV3 is the version 3 Master_Down_Interval = 3 * Master_Adver_Interval +
// Skew_Time (RFC 9568 section 6.1): 360.9375 ms at priority 100 and 100 ms adverts, 36.09375 ms
// at 10 ms.
func MasterDownIntervalV3(masterAdverInterval time.Duration, priority uint8) time.Duration {
	return 3*masterAdverInterval + SkewTimeV3(priority, masterAdverInterval)
}

// skew is Skew_Time for the Machine's version and the current Master_Adver_Interval.
func (m *Machine) skew() time.Duration {
	if m.cfg.Version == 3 {
		return SkewTimeV3(m.priority, m.masterInterval)
	}
	return SkewTime(m.priority)
}

// downInterval is Master_Down_Interval for the Machine's version and the current
// Master_Adver_Interval.
func (m *Machine) downInterval() time.Duration {
	if m.cfg.Version == 3 {
		return MasterDownIntervalV3(m.masterInterval, m.priority)
	}
	return MasterDownInterval(m.interval, m.priority)
}

// Start leaves Initialize (section 6.4.1): the address owner (priority 255) sends an advert
// and becomes Master at once; any other router becomes Backup and sets Master_Down_Timer to
// Master_Down_Interval. Start in any other state does nothing.
//
// A passive node (SetPassive) becomes Backup whatever its priority. A node with a Fault stays in
// Initialize until ClearFault.
func (m *Machine) Start(now time.Time) []Action {
	if m.state != StateInitialize || m.started {
		return nil
	}
	m.started = true
	if m.fault != "" {
		return nil
	}
	return m.join(now, CauseStart, "start")
}

// join leaves Initialize as Start does, the Transition to Backup saying cause and why.
func (m *Machine) join(now time.Time, cause Cause, why string) []Action {
	if m.priority == 255 && !m.passive {
		if cause == CauseStart {
			cause, why = CauseOwner, "start as the address owner (priority 255)"
		} else {
			why += "; address owner (priority 255)"
		}
		return m.becomeMaster(now, cause, why)
	}
	m.masterIP = netip.Addr{}
	m.masterInterval = m.interval // RFC 9568 section 6.4.1
	m.backupTimer(now, m.downInterval(), CauseMasterDown,
		"no advert within Master_Down_Interval of start")
	return []Action{m.transition(now, StateBackup, cause, why)}
}

// Tick fires the timer if it is due at or before now: in Backup, Master_Down_Timer makes this
// router Master (section 6.4.2); in Master, Adver_Timer sends the next advert (6.4.3).
// Calling Tick early, or in Initialize, does nothing.
//
// A passive Backup has no Master_Down_Timer (Deadline is zero) and Tick does nothing. A held
// Backup (SetHold) returns Held instead of becoming Master when adverts are missing.
func (m *Machine) Tick(now time.Time) []Action {
	if m.state == StateInitialize || m.deadline.IsZero() || now.Before(m.deadline) {
		return nil
	}
	switch m.state {
	case StateBackup:
		if h, ok := m.holdExpiry(now); ok {
			return []Action{h}
		}
		return m.becomeMaster(now, m.downCause, m.downReason)
	case StateMaster:
		m.deadline = now.Add(m.interval)
		return []Action{SendAdvert{m.advert(m.priority)}}
	}
	return nil
}

// Deadline is when Tick must next be called: Master_Down_Timer in Backup, Adver_Timer in
// Master, the zero time in Initialize and in a passive Backup.
func (m *Machine) Deadline() time.Time {
	return m.deadline
}

// TakesOverAt reports the deadline at which Tick would make this router Master, and whether
// there is one: a Backup's Master_Down_Timer that is running and not held (SetHold). The
// Router uses it to be awake and ready before that instant, so that the takeover happens at
// the deadline and not one operating-system wake-up after it; Tick still decides.
func (m *Machine) TakesOverAt() (time.Time, bool) {
	if m.state != StateBackup || m.deadline.IsZero() || (m.hold && m.downCause == CauseMasterDown) {
		return time.Time{}, false
	}
	return m.deadline, true
}

// Receive processes one received packet. It applies every check of section 7.1 of RFC 3768
// (version 2) or RFC 9568 (version 3: the checksum over the pseudo-header of in.Src and
// in.Dst, no authentication and no interval check), plus three of its own (a source of the
// Primary's family, own advert, unicast peer). A packet that fails one is counted in
// MachineStatus.Dropped under its Drop* reason and changes nothing else: no state, no timer,
// no MasterIP, no advert. A valid advert is handled as sections 6.4.2 (Backup) and 6.4.3
// (Master) say; in version 3 that includes adopting the Master's interval as
// Master_Adver_Interval. Receive in Initialize does nothing and counts nothing.
//
// One deviation: section 7.1 also drops every advert received by the address owner
// (priority 255). With two owners for one VRID (a misconfiguration) that leaves two Masters
// forever; like RFC 9568 erratum 8298 we process such adverts normally instead, so the owner
// with the greater address wins, and a single owner is unaffected (nothing outranks 255).
func (m *Machine) Receive(now time.Time, in Inbound) []Action {
	if m.state == StateInitialize {
		return nil
	}
	adv, src, reason := m.check(in)
	if reason != "" {
		m.dropped[reason]++
		return nil
	}
	m.received++
	if adv.Priority == 0 {
		m.receivedZero++
	}
	if m.state == StateBackup {
		return m.receiveBackup(now, adv, src)
	}
	return m.receiveMaster(now, adv, src)
}

// receiveBackup handles a valid advert in Backup (section 6.4.2).
func (m *Machine) receiveBackup(now time.Time, adv Advertisement, src netip.Addr) []Action {
	m.heard, m.heldSince = now, time.Time{}
	if adv.Priority == 0 {
		// Section 6.4.2: the Master resigned; take over after Skew_Time unless a
		// higher-priority Backup (with a shorter skew) advertises first. A passive
		// Backup does not take over.
		m.masterIP = netip.Addr{}
		m.backupTimer(now, m.skew(), CausePriorityZero,
			fmt.Sprintf("master %v resigned (priority 0 advert)", src))
		return nil
	}
	m.masterIP = src
	if !m.preempts() || adv.Priority >= m.priority {
		m.learnInterval(adv)
		m.backupTimer(now, m.downInterval(), CauseMasterDown,
			fmt.Sprintf("no advert from master %v within Master_Down_Interval", src))
	} else {
		// A lower-priority Master and we preempt; let the timer run out.
		m.downCause = CausePreempting
		m.downReason = fmt.Sprintf("preempting master %v of lower priority %d < %d", src, adv.Priority, m.priority)
	}
	return nil
}

// receiveMaster handles a valid advert in Master (section 6.4.3).
func (m *Machine) receiveMaster(now time.Time, adv Advertisement, src netip.Addr) []Action {
	if adv.Priority == 0 {
		// Section 6.4.3: another Master resigned; assert ourselves at once.
		m.deadline = now.Add(m.interval)
		return []Action{SendAdvert{m.advert(m.priority)}}
	}
	if adv.Priority > m.priority || (adv.Priority == m.priority && src.Compare(m.cfg.Primary) > 0) {
		why := fmt.Sprintf("advert from %v with higher priority %d > %d", src, adv.Priority, m.priority)
		if adv.Priority == m.priority {
			why = fmt.Sprintf("advert from %v with equal priority %d and a higher address", src, adv.Priority)
		}
		m.learnInterval(adv)
		m.backupTimer(now, m.downInterval(), CauseMasterDown,
			fmt.Sprintf("no advert from master %v within Master_Down_Interval", src))
		m.masterIP = src
		return []Action{m.transition(now, StateBackup, CausePreempted, why)}
	}
	// Lower priority, or equal from a lower address: section 6.4.3 discards it. That other
	// Master (a healed split brain, a peer that could not hear us) stops at our next
	// advert, but the segment's ARP caches may still point at it: announce ourselves now,
	// an advert at once (the next one stays scheduled) and a fresh burst of gratuitous
	// ARPs. Without it the address stays black-holed until the caches expire, keepalived's
	// known gap (its issues #20, #166, #1884).
	return []Action{SendAdvert{m.advert(m.priority)},
		Reassert{Reason: fmt.Sprintf("another master %v advertises priority %d; ours is %d and wins", src, adv.Priority, m.priority)}}
}

// learnInterval adopts the Master's advertisement interval as Master_Adver_Interval, which
// version 3 does whenever it (re)sets Master_Down_Timer from a Master's advert (RFC 9568
// sections 6.4.2 and 6.4.3: "Set Master_Adver_Interval to Adver Interval contained in the
// ADVERTISEMENT"). Version 2 has dropped any advert whose interval differs from ours.
func (m *Machine) learnInterval(adv Advertisement) {
	if m.cfg.Version == 3 {
		m.masterInterval = adv.Interval
	}
}

// check runs the receive validation and returns the advert and its source, or a Drop*
// reason. It changes nothing.
func (m *Machine) check(in Inbound) (Advertisement, netip.Addr, string) {
	var adv Advertisement
	if in.TTL != 255 {
		return adv, netip.Addr{}, DropTTL
	}
	src := in.Src.Unmap()
	if !src.IsValid() || !sameFamily(src, m.cfg.Primary) {
		return adv, src, DropSource
	}
	if len(in.Payload) > 0 && in.Payload[0]>>4 != m.cfg.Version {
		return adv, src, DropVersion
	}
	if err := adv.Unmarshal(in.Payload, PseudoHeader{Src: src, Dst: in.Dst}); err != nil {
		return adv, src, parseDropReason(err)
	}
	if adv.VRID != m.cfg.VRID {
		return adv, src, DropVRID
	}
	if src == m.cfg.Primary {
		return adv, src, DropOwn
	}
	if m.peers != nil && !m.peers[src] {
		return adv, src, DropPeer
	}
	if adv.AuthType != m.cfg.AuthType {
		return adv, src, DropAuthType
	}
	if m.cfg.AuthType == AuthSimple && adv.AuthData != m.cfg.AuthData {
		return adv, src, DropAuthData
	}
	if m.cfg.Version == 2 && adv.Interval != m.interval {
		return adv, src, DropInterval
	}
	// Section 7.1: a mismatched address list is logged and, unless the sender is the
	// address owner (priority 255), the packet is dropped.
	if adv.Priority != 255 && !m.sameAddresses(adv.Addresses) {
		return adv, src, DropAddresses
	}
	return adv, src, ""
}

// parseDropReason classifies an UnmarshalBinary error.
func parseDropReason(err error) string {
	switch {
	case errors.Is(err, ErrVersion):
		return DropVersion
	case errors.Is(err, ErrTooShort), errors.Is(err, ErrLength):
		return DropLength
	case errors.Is(err, ErrType):
		return DropType
	case errors.Is(err, ErrChecksum):
		return DropChecksum
	case errors.Is(err, ErrVRID):
		return DropVRID
	case errors.Is(err, ErrAuthType):
		return DropAuthType
	case errors.Is(err, ErrInterval):
		return DropInterval
	}
	return DropMalformed
}

// sameAddresses reports whether got is our virtual address list, in any order.
func (m *Machine) sameAddresses(got []netip.Addr) bool {
	if len(got) != len(m.vips) {
		return false
	}
	var seen [255]bool
	for _, ip := range got {
		i, ok := m.vips[ip]
		if !ok || seen[i] {
			return false
		}
		seen[i] = true
	}
	return true
}

// SetPriority changes this router's priority in any state; p must be 1..255 (a p of 0, or the
// current priority, does nothing: resigning is Resign or Shutdown). A Master advertises the new priority
// at once, so a Backup with preemption sees a lowered Master without waiting for Adver_Timer,
// and keeps advertising it until a higher-priority Backup takes over. A Backup uses it for the
// next comparison and the next Master_Down_Timer (a running timer keeps its deadline).
func (m *Machine) SetPriority(now time.Time, p uint8) []Action {
	if p == 0 || p == m.priority {
		return nil
	}
	m.priority = p
	if m.state != StateMaster {
		return nil
	}
	m.deadline = now.Add(m.interval)
	return []Action{SendAdvert{m.advert(p)}}
}

// SetPrimary changes this node's own address, which the interface no longer has (a
// recreated interface's new link-local address, a renumbered IPv4 address): it is the
// tie-breaker from the next comparison on, and a Master's MasterIP. It must be of the same
// family as the one before and pass the checks of NewMachine (link-local for IPv6, not a
// unicast peer); the Machine is unchanged otherwise. It sends nothing: the caller's adverts
// carry it from the next one.
func (m *Machine) SetPrimary(ip netip.Addr) error {
	ip = ip.Unmap()
	switch {
	case !sameFamily(ip, m.cfg.Primary):
		return fmt.Errorf("vrrp: primary address %v: must be an %s address, as %v", ip, familyName(m.cfg.Primary), m.cfg.Primary)
	case m.peers[ip]:
		return fmt.Errorf("vrrp: primary address %v is a unicast peer", ip)
	}
	if err := checkPrimary(m.cfg.Version, ip); err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	m.cfg.Primary = ip
	if m.state == StateMaster {
		m.masterIP = ip
	}
	return nil
}

// Fault takes this node out of the protocol because its interface cannot carry it (deleted,
// down, no carrier): a Master or Backup goes to Initialize with a Transition of cause c (one
// of the CauseInterface* values) and reason why, and sends nothing, not even the priority-0
// advert of Shutdown, which could not leave. A Master's caller releases the addresses, as on
// any transition from Master. The node stays out until ClearFault; a Fault while already
// faulted only updates the reason. Before Start, it makes Start wait for ClearFault.
func (m *Machine) Fault(now time.Time, c Cause, why string) []Action {
	if why == "" {
		why = c.String()
	}
	m.fault = why
	if m.state == StateInitialize {
		return nil
	}
	m.deadline = time.Time{}
	m.downReason, m.downCause = "", CauseUnknown
	m.masterIP = netip.Addr{}
	return []Action{m.transition(now, StateInitialize, c, why)}
}

// ClearFault ends a Fault: a started node rejoins as Start would have it (Backup with
// Master_Down_Timer, or Master at once for a non-passive address owner), with a Transition of
// CauseInterfaceBack and reason why. Without a Fault it does nothing.
func (m *Machine) ClearFault(now time.Time, why string) []Action {
	if m.fault == "" {
		return nil
	}
	m.fault = ""
	if !m.started || m.state != StateInitialize {
		return nil
	}
	if why == "" {
		why = CauseInterfaceBack.String()
	}
	return m.join(now, CauseInterfaceBack, why)
}

// SetPassive turns passive mode on or off. A passive node in Backup never takes over on its
// own: it has no Master_Down_Timer, a priority-0 advert does not start one, and it does not
// preempt; a passive node that starts becomes Backup, even with priority 255. Only TakeOver
// makes it Master. Turning passive mode off in Backup starts Master_Down_Timer from now. A
// Master stays Master either way (Resign makes it Backup).
func (m *Machine) SetPassive(now time.Time, on bool) {
	if on == m.passive {
		return
	}
	m.passive = on
	if m.state != StateBackup {
		return
	}
	if on {
		m.deadline = time.Time{}
		m.downReason, m.downCause = "", CauseUnknown
		return
	}
	m.backupTimer(now, m.downInterval(), CauseMasterDown,
		"no advert within Master_Down_Interval of leaving passive mode")
}

// SetPreempt changes Preempt_Mode; a Backup applies it to the next advert it receives.
func (m *Machine) SetPreempt(on bool) {
	m.cfg.Preempt = on
}

// Resign makes a Master step down on the operator's word: it sends an advert with priority 0
// (so that a Backup takes over after its Skew_Time, section 6.4.2) and becomes Backup with
// Master_Down_Timer set (none when passive), Transition cause CauseResigned and reason
// "resigned: " + why. It then does not preempt, so that it does not take the role straight
// back, until it next becomes Master through Master_Down_Timer or TakeOver. Resign in any
// other state does nothing.
func (m *Machine) Resign(now time.Time, why string) []Action {
	if m.state != StateMaster {
		return nil
	}
	resign := SendAdvert{m.advert(0)}
	m.masterIP = netip.Addr{}
	m.noPreempt = true
	m.backupTimer(now, m.downInterval(), CauseMasterDown,
		"no advert within Master_Down_Interval of resigning")
	return []Action{resign, m.transition(now, StateBackup, CauseResigned, "resigned: "+why)}
}

// TakeOver makes a Backup (passive or not) Master now, as Master_Down_Timer expiry would
// (advert, Adver_Timer, Transition; the caller adds the addresses and sends gratuitous ARP),
// with cause CauseTakeOver and reason "takeover: " + why. A current Master of higher priority
// that does not resign takes the role back with its next advert (section 6.4.3); a swap makes
// the Master Resign first. TakeOver in any other state does nothing.
func (m *Machine) TakeOver(now time.Time, why string) []Action {
	if m.state != StateBackup {
		return nil
	}
	return m.becomeMaster(now, CauseTakeOver, "takeover: "+why)
}

// Shutdown returns to Initialize (sections 6.4.2 and 6.4.3): a Master first sends an advert
// with priority 0 so that a Backup takes over after its Skew_Time instead of
// Master_Down_Interval. Start may be called again afterwards.
func (m *Machine) Shutdown(now time.Time) []Action {
	m.started = false
	switch m.state {
	case StateMaster:
		resign := SendAdvert{m.advert(0)}
		return []Action{resign, m.toInitialize(now)}
	case StateBackup:
		return []Action{m.toInitialize(now)}
	}
	return nil
}

// ReceivedCounts returns MachineStatus's Received and ReceivedPriorityZero without the rest
// of the snapshot (which copies the Dropped map): the Router reads them after every advert.
func (m *Machine) ReceivedCounts() (all, priorityZero uint64) { return m.received, m.receivedZero }

// Status returns a snapshot; its Dropped map is a copy.
func (m *Machine) Status() MachineStatus {
	return MachineStatus{
		State:                m.state,
		Priority:             m.priority,
		MasterAdverInterval:  m.masterInterval,
		MasterIP:             m.masterIP,
		Since:                m.since,
		Transitions:          m.transitions,
		Dropped:              maps.Clone(m.dropped),
		Received:             m.received,
		ReceivedPriorityZero: m.receivedZero,
		Preempt:              m.cfg.Preempt,
		Passive:              m.passive,
		PreemptSuppressed:    m.noPreempt,
		Fault:                m.fault,
		Held:                 m.state == StateBackup && !m.heldSince.IsZero(),
		LastAdvert:           m.heard,
	}
}

func (m *Machine) toInitialize(now time.Time) Action {
	m.deadline = time.Time{}
	m.downReason, m.downCause = "", CauseUnknown
	m.masterIP = netip.Addr{}
	return m.transition(now, StateInitialize, CauseShutdown, "shutdown")
}

// becomeMaster: send an advert, set Adver_Timer, transition to Master (sections 6.4.1/6.4.2;
// the gratuitous ARPs are the caller's part of the Transition). Preemption is no longer
// suppressed by an earlier Resign.
func (m *Machine) becomeMaster(now time.Time, cause Cause, why string) []Action {
	m.deadline = now.Add(m.interval)
	m.downReason, m.downCause = "", CauseUnknown
	m.masterIP = m.cfg.Primary
	m.masterInterval = m.interval // the Master's interval is ours now
	m.noPreempt = false
	return []Action{SendAdvert{m.advert(m.priority)}, m.transition(now, StateMaster, cause, why)}
}

// backupTimer sets Master_Down_Timer to now+d for the given cause, or, for a passive node,
// clears it: a passive Backup never takes over on its own.
func (m *Machine) backupTimer(now time.Time, d time.Duration, cause Cause, why string) {
	m.heldSince = time.Time{}
	if m.passive {
		m.deadline = time.Time{}
		m.downReason, m.downCause = "", CauseUnknown
		return
	}
	m.deadline = now.Add(d)
	m.downReason, m.downCause = why, cause
}

func (m *Machine) transition(now time.Time, to State, cause Cause, why string) Action {
	t := Transition{From: m.state, To: to, Cause: cause, Reason: why, At: now}
	m.state = to
	m.since = now
	m.transitions++
	return t
}

// preempts is Preempt_Mode, with section 6.1's exception: the address owner always preempts.
// A passive node, or one that resigned, does not.
func (m *Machine) preempts() bool {
	return (m.cfg.Preempt || m.priority == 255) && !m.passive && !m.noPreempt
}

// advert builds our advertisement with the given priority. Its slices are fresh, so the
// caller may keep or modify it.
func (m *Machine) advert(priority uint8) Advertisement {
	return Advertisement{
		Version:   m.cfg.Version,
		Type:      TypeAdvertisement,
		VRID:      m.cfg.VRID,
		Priority:  priority,
		AuthType:  m.cfg.AuthType,
		Interval:  m.interval,
		Addresses: slices.Clone(m.cfg.VirtualIPs),
		AuthData:  m.cfg.AuthData,
	}
}
