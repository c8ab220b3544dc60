package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var (
	t0        = time.Date(2026, 11, 22, 17, 0, 0, 0, time.UTC)
	ourIP     = netip.MustParseAddr("192.0.2.1")
	peerIP    = netip.MustParseAddr("192.0.2.2")
	groupIP   = netip.MustParseAddr("224.0.0.18")
	testVIPs  = addrs("192.0.2.100", "192.0.2.101")
	secret12  = [8]byte{'s', 'e', 'c', 'r', 'e', 't', '1', '2'}
	ignoreWhy = cmp.Options{cmpopts.IgnoreFields(Transition{}, "Reason"), cmpopts.IgnoreFields(Reassert{}, "Reason")}
)

// Exact RFC 3768 timer values for advert interval 1 s: Skew_Time = (256-p)/256 s.
const (
	skew100 = 609375 * time.Microsecond // 156/256 s
	down100 = 3*time.Second + skew100   // 3.609375 s
	skew150 = 414062500 * time.Nanosecond
	down150 = 3*time.Second + skew150
)

func testConfig(priority uint8, preempt bool) MachineConfig {
	return MachineConfig{
		VRID: 51, Priority: priority, AdvertInterval: time.Second, Preempt: preempt,
		Primary: ourIP, VirtualIPs: testVIPs,
	}
}

func newTestMachine(t *testing.T, cfg MachineConfig) *Machine {
	t.Helper()
	m, err := NewMachine(cfg)
	if err != nil {
		t.Fatalf("NewMachine: %v", err)
	}
	return m
}

// ourAdvert is what a Machine with testConfig sends.
func ourAdvert(priority uint8) Advertisement {
	return Advertisement{Version: 2, Type: 1, VRID: 51, Priority: priority, Interval: time.Second,
		Addresses: testVIPs}
}

// peerAdvert is a valid advert from peerIP for testConfig, modified by mod.
func peerAdvert(t *testing.T, priority uint8, mod func(*Advertisement)) Inbound {
	t.Helper()
	a := ourAdvert(priority)
	a.Addresses = addrs("192.0.2.101", "192.0.2.100") // order does not matter
	if mod != nil {
		mod(&a)
	}
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary(%+v): %v", a, err)
	}
	return Inbound{Src: peerIP, Dst: groupIP, TTL: 255, Payload: b}
}

// rawPeer is a peer packet whose bytes are edited after marshalling; fix recomputes the
// checksum so that only the edited field is wrong.
func rawPeer(t *testing.T, priority uint8, edit func([]byte) []byte, fix bool) Inbound {
	t.Helper()
	in := peerAdvert(t, priority, nil)
	b := edit(in.Payload)
	if fix {
		b[6], b[7] = 0, 0
		c := Checksum(b)
		b[6], b[7] = byte(c>>8), byte(c)
	}
	in.Payload = b
	return in
}

func checkActions(t *testing.T, what string, got, want []Action) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpAddr, ignoreWhy, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s: actions (-want +got):\n%s", what, diff)
	}
}

func checkState(t *testing.T, m *Machine, state State, deadline time.Time) {
	t.Helper()
	if got := m.Status().State; got != state {
		t.Errorf("state = %v, want %v", got, state)
	}
	if got := m.Deadline(); !got.Equal(deadline) {
		t.Errorf("Deadline() = %v, want %v (off by %v)", got, deadline, got.Sub(deadline))
	}
	checkTakesOverAt(t, m)
}

// checkTakesOverAt checks TakesOverAt against what Tick does at the deadline, on a copy of m
// (Tick changes no map of the Machine): a deadline is reported exactly when Tick at it returns
// a Transition to Master.
func checkTakesOverAt(t *testing.T, m *Machine) {
	t.Helper()
	at, ok := m.TakesOverAt()
	trial := *m
	becomes := false
	if d := trial.Deadline(); !d.IsZero() {
		for _, a := range trial.Tick(d) {
			if tr, is := a.(Transition); is && tr.To == StateMaster {
				becomes = true
			}
		}
	}
	if ok != becomes || (ok && !at.Equal(m.Deadline())) {
		t.Errorf("TakesOverAt() = %v, %t; Tick at Deadline() %v makes it Master: %t", at, ok, m.Deadline(), becomes)
	}
}

// startMaster returns a machine that started at t0 and became Master at t0+down100.
func startMaster(t *testing.T, cfg MachineConfig) (*Machine, time.Time) {
	t.Helper()
	m := newTestMachine(t, cfg)
	m.Start(t0)
	at := m.Deadline()
	m.Tick(at)
	if m.Status().State != StateMaster {
		t.Fatalf("setup: state %v, want master", m.Status().State)
	}
	return m, at
}

func TestTimers(t *testing.T) {
	tests := []struct {
		priority uint8
		skew     time.Duration
		down     time.Duration // with a 1 s advert interval
	}{
		{1, 996093750 * time.Nanosecond, 3996093750 * time.Nanosecond},
		{100, skew100, down100},
		{120, 531250 * time.Microsecond, 3531250 * time.Microsecond},
		{150, skew150, down150},
		{254, 7812500 * time.Nanosecond, 3007812500 * time.Nanosecond},
		{255, 3906250 * time.Nanosecond, 3003906250 * time.Nanosecond},
	}
	for _, tt := range tests {
		if got := SkewTime(tt.priority); got != tt.skew {
			t.Errorf("SkewTime(%d) = %v, want %v", tt.priority, got, tt.skew)
		}
		if got := MasterDownInterval(time.Second, tt.priority); got != tt.down {
			t.Errorf("MasterDownInterval(1s, %d) = %v, want %v", tt.priority, got, tt.down)
		}
	}
	if got, want := MasterDownInterval(3*time.Second, 100), 9*time.Second+skew100; got != want {
		t.Errorf("MasterDownInterval(3s, 100) = %v, want %v", got, want)
	}
}

func TestStartBackupThenMaster(t *testing.T) {
	m := newTestMachine(t, testConfig(100, true))
	checkState(t, m, StateInitialize, time.Time{})
	checkActions(t, "Tick before Start", m.Tick(t0), nil)

	checkActions(t, "Start", m.Start(t0), []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: t0}})
	checkState(t, m, StateBackup, t0.Add(down100))
	checkActions(t, "second Start", m.Start(t0.Add(time.Millisecond)), nil)

	checkActions(t, "Tick 1 ns early", m.Tick(t0.Add(down100-1)), nil)
	checkState(t, m, StateBackup, t0.Add(down100))

	up := t0.Add(down100)
	checkActions(t, "Tick at Master_Down_Interval", m.Tick(up), []Action{
		SendAdvert{ourAdvert(100)},
		Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: up},
	})
	checkState(t, m, StateMaster, up.Add(time.Second))

	checkActions(t, "Tick 1 ns before Adver_Timer", m.Tick(up.Add(time.Second-1)), nil)
	checkActions(t, "Adver_Timer", m.Tick(up.Add(time.Second)), []Action{SendAdvert{ourAdvert(100)}})
	checkState(t, m, StateMaster, up.Add(2*time.Second))
	// A late Tick sends one advert and schedules the next a full interval after it.
	late := up.Add(2*time.Second + 300*time.Millisecond)
	checkActions(t, "late Adver_Timer", m.Tick(late), []Action{SendAdvert{ourAdvert(100)}})
	checkState(t, m, StateMaster, late.Add(time.Second))

	want := MachineStatus{State: StateMaster, Priority: 100, MasterAdverInterval: time.Second, MasterIP: ourIP, Since: up, Transitions: 2,
		Dropped: map[string]uint64{}, Preempt: true}
	if diff := cmp.Diff(want, m.Status(), cmpAddr); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
}

func TestBackupAdvertResetsTimer(t *testing.T) {
	m := newTestMachine(t, testConfig(100, true))
	m.Start(t0)
	for i, at := range []time.Time{t0.Add(2 * time.Second), t0.Add(5 * time.Second), t0.Add(8*time.Second + 609375*time.Microsecond)} {
		checkActions(t, fmt.Sprintf("advert %d", i), m.Receive(at, peerAdvert(t, 150, nil)), nil)
		checkState(t, m, StateBackup, at.Add(down100))
	}
	last := t0.Add(8*time.Second + 609375*time.Microsecond)
	if got := m.Status().MasterIP; got != peerIP {
		t.Errorf("MasterIP = %v, want %v", got, peerIP)
	}
	// The previous deadline passes without effect; the new one fires.
	checkActions(t, "Tick at the old deadline", m.Tick(t0.Add(5*time.Second+down100)), nil)
	checkActions(t, "Tick at the new deadline", m.Tick(last.Add(down100)), []Action{
		SendAdvert{ourAdvert(100)},
		Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: last.Add(down100)},
	})
}

func TestBackupPriorityZeroSkew(t *testing.T) {
	m := newTestMachine(t, testConfig(100, true))
	m.Start(t0)
	m.Receive(t0.Add(time.Second), peerAdvert(t, 150, nil))
	resign := t0.Add(2500 * time.Millisecond)
	checkActions(t, "priority 0", m.Receive(resign, peerAdvert(t, 0, nil)), nil)
	checkState(t, m, StateBackup, resign.Add(skew100))
	if got := m.Status().MasterIP; got.IsValid() {
		t.Errorf("MasterIP = %v after the Master resigned, want none", got)
	}
	checkActions(t, "Tick 1 ns before Skew_Time", m.Tick(resign.Add(skew100-1)), nil)
	acts := m.Tick(resign.Add(skew100))
	checkActions(t, "Tick at Skew_Time", acts, []Action{
		SendAdvert{ourAdvert(100)},
		Transition{From: StateBackup, To: StateMaster, Cause: CausePriorityZero, At: resign.Add(skew100)},
	})
	if tr := acts[1].(Transition); !strings.Contains(tr.Reason, "resigned") || !strings.Contains(tr.Reason, peerIP.String()) {
		t.Errorf("Reason = %q, want it to name the resigning master %v", tr.Reason, peerIP)
	}
}

func TestBackupPreempt(t *testing.T) {
	tests := []struct {
		name      string
		own       uint8
		preempt   bool
		advert    uint8
		wantReset bool
	}{
		{"preempt, lower advert: timer runs out", 100, true, 50, false},
		{"preempt, equal advert: reset", 100, true, 100, true},
		{"preempt, higher advert: reset", 100, true, 150, true},
		{"no preempt, lower advert: reset", 100, false, 50, true},
		{"no preempt, equal advert: reset", 100, false, 100, true},
		{"no preempt, higher advert: reset", 100, false, 150, true},
		{"no preempt, lowest possible advert: reset", 254, false, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMachine(t, testConfig(tt.own, tt.preempt))
			m.Start(t0)
			first := m.Deadline()
			at := t0.Add(3 * time.Second)
			checkActions(t, "Receive", m.Receive(at, peerAdvert(t, tt.advert, nil)), nil)
			want := first
			if tt.wantReset {
				want = at.Add(MasterDownInterval(time.Second, tt.own))
			}
			checkState(t, m, StateBackup, want)
			if got := m.Status().MasterIP; got != peerIP {
				t.Errorf("MasterIP = %v, want %v (the advert was valid)", got, peerIP)
			}
			cause := CauseMasterDown
			if !tt.wantReset {
				cause = CausePreempting
			}
			wantActs := []Action{SendAdvert{ourAdvert(tt.own)}, Transition{From: StateBackup, To: StateMaster, Cause: cause, At: want}}
			checkActions(t, "Tick at deadline", m.Tick(want), wantActs)
		})
	}
}

// Section 6.1: the address owner preempts whatever Preempt_Mode says.
func TestOwnerAlwaysPreempts(t *testing.T) {
	m := newTestMachine(t, testConfig(100, false))
	m.Start(t0)
	checkActions(t, "SetPriority(255) in Backup", m.SetPriority(t0.Add(time.Second), 255), nil)
	deadline := m.Deadline()
	checkActions(t, "advert 254", m.Receive(t0.Add(2*time.Second), peerAdvert(t, 254, nil)), nil)
	checkState(t, m, StateBackup, deadline)
}

func TestOwnerStartsMaster(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		m := newTestMachine(t, testConfig(255, preempt))
		checkActions(t, "Start", m.Start(t0), []Action{
			SendAdvert{ourAdvert(255)},
			Transition{From: StateInitialize, To: StateMaster, Cause: CauseOwner, At: t0},
		})
		checkState(t, m, StateMaster, t0.Add(time.Second))
		if got := m.Status().MasterIP; got != ourIP {
			t.Errorf("MasterIP = %v, want our own %v", got, ourIP)
		}
	}
}

func TestMasterStepsDown(t *testing.T) {
	tests := []struct {
		name     string
		own      uint8
		primary  string
		advert   uint8
		src      string
		wantDown bool
	}{
		{"higher priority", 100, "192.0.2.1", 150, "192.0.2.2", true},
		{"higher priority from a lower address", 100, "192.0.2.9", 101, "192.0.2.2", true},
		{"owner", 254, "192.0.2.1", 255, "192.0.2.2", true},
		{"lower priority", 100, "192.0.2.1", 99, "192.0.2.2", false},
		{"lower priority from a higher address", 150, "192.0.2.1", 100, "192.0.2.200", false},
		{"equal priority, greater address", 100, "192.0.2.1", 100, "192.0.2.2", true},
		{"equal priority, lower address", 100, "192.0.2.3", 100, "192.0.2.2", false},
		// Unsigned 32-bit comparison: 128.0.0.1 > 127.255.255.255 (a signed compare says less).
		{"equal priority, unsigned compare, greater", 100, "127.255.255.255", 100, "128.0.0.1", true},
		{"equal priority, unsigned compare, lower", 100, "128.0.0.1", 100, "127.255.255.255", false},
		{"equal priority, high bit", 100, "10.0.0.1", 100, "200.0.0.1", true},
		{"two owners, greater address", 255, "192.0.2.1", 255, "192.0.2.2", true},
		{"two owners, lower address", 255, "192.0.2.3", 255, "192.0.2.2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.own, true)
			cfg.Primary = netip.MustParseAddr(tt.primary)
			m := newTestMachine(t, cfg)
			m.Start(t0)
			if tt.own != 255 {
				m.Tick(m.Deadline())
			}
			before := m.Status()
			deadline := m.Deadline()
			at := deadline.Add(-400 * time.Millisecond)
			in := peerAdvert(t, tt.advert, nil)
			in.Src = netip.MustParseAddr(tt.src)
			acts := m.Receive(at, in)
			if !tt.wantDown {
				// The other Master is outranked: an advert at once and a fresh ARP burst, the
				// next advert still at its time, nothing else changed.
				checkActions(t, "Receive", acts, []Action{SendAdvert{ourAdvert(tt.own)}, Reassert{}})
				checkState(t, m, StateMaster, deadline)
				// Nothing changed but the count of valid adverts received.
				want := before
				want.Received++
				if diff := cmp.Diff(want, m.Status(), cmpAddr); diff != "" {
					t.Errorf("a discarded advert changed the status (-want +got):\n%s", diff)
				}
				return
			}
			checkActions(t, "Receive", acts, []Action{Transition{From: StateMaster, To: StateBackup, Cause: CausePreempted, At: at}})
			checkState(t, m, StateBackup, at.Add(MasterDownInterval(time.Second, tt.own)))
			st := m.Status()
			if st.MasterIP != in.Src || !st.Since.Equal(at) || st.Transitions != before.Transitions+1 {
				t.Errorf("Status = %+v, want MasterIP %v, Since %v, Transitions %d", st, in.Src, at, before.Transitions+1)
			}
		})
	}
}

func TestMasterPriorityZeroSendsAdvert(t *testing.T) {
	m, up := startMaster(t, testConfig(100, true))
	at := up.Add(300 * time.Millisecond)
	checkActions(t, "priority 0", m.Receive(at, peerAdvert(t, 0, nil)), []Action{SendAdvert{ourAdvert(100)}})
	checkState(t, m, StateMaster, at.Add(time.Second))
}

// Section 7.1's address-list rule: a mismatch is dropped unless the sender is the owner.
func TestAddressListOwnerAccepted(t *testing.T) {
	m, up := startMaster(t, testConfig(100, true))
	in := peerAdvert(t, 255, func(a *Advertisement) { a.Addresses = addrs("192.0.2.200") })
	at := up.Add(100 * time.Millisecond)
	checkActions(t, "owner advert with another address list", m.Receive(at, in),
		[]Action{Transition{From: StateMaster, To: StateBackup, Cause: CausePreempted, At: at}})
}

// RFC 3768 section 5.3.10: with auth type 0 the authentication data is ignored on reception.
func TestAuthNoneIgnoresAuthData(t *testing.T) {
	m := newTestMachine(t, testConfig(100, true))
	m.Start(t0)
	at := t0.Add(time.Second)
	m.Receive(at, peerAdvert(t, 100, func(a *Advertisement) { a.AuthData = secret12 }))
	checkState(t, m, StateBackup, at.Add(down100))
}

func TestAuthSimple(t *testing.T) {
	cfg := testConfig(100, true)
	cfg.AuthType, cfg.AuthData = AuthSimple, secret12
	m := newTestMachine(t, cfg)
	m.Start(t0)
	at := t0.Add(time.Second)
	m.Receive(at, peerAdvert(t, 100, func(a *Advertisement) { a.AuthType, a.AuthData = AuthSimple, secret12 }))
	checkState(t, m, StateBackup, at.Add(down100))
	acts := m.Tick(at.Add(down100))
	want := ourAdvert(100)
	want.AuthType, want.AuthData = AuthSimple, secret12
	checkActions(t, "Master advert", acts, []Action{SendAdvert{want},
		Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: at.Add(down100)}})
}

// The Machine sends byte for byte what keepalived 2.2.7 sends for the same configuration, and
// accepts keepalived's adverts (both auth types, and its priority-0 resignation).
func TestKeepalivedInterop(t *testing.T) {
	for _, auth := range []string{"none", "pass"} {
		t.Run(auth, func(t *testing.T) {
			cfg := MachineConfig{VRID: 51, Priority: 100, AdvertInterval: time.Second, Preempt: true,
				Primary: peerIP, VirtualIPs: keepalivedAddrs}
			if auth == "pass" {
				cfg.AuthType, cfg.AuthData = AuthSimple, secret12
			}
			m, _ := startMaster(t, cfg)
			send := m.Tick(m.Deadline())
			adv := send[0].(SendAdvert).Advert
			b, err := adv.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			captured := readHexFile(t, "testdata/keepalived/auth-"+auth+".hex")
			if diff := cmp.Diff(captured, b); diff != "" {
				t.Errorf("our advert vs keepalived's (-keepalived +ours):\n%s", diff)
			}

			// Another node, Backup, hearing keepalived at 192.0.2.1.
			cfg.Primary = netip.MustParseAddr("192.0.2.3")
			m = newTestMachine(t, cfg)
			m.Start(t0)
			ka := Inbound{Src: ourIP, Dst: groupIP, TTL: 255, Payload: captured}
			at := t0.Add(time.Second)
			checkActions(t, "keepalived advert", m.Receive(at, ka), nil)
			checkState(t, m, StateBackup, at.Add(down100))
			ka.Payload = readHexFile(t, "testdata/keepalived/auth-"+auth+"-prio0.hex")
			at = at.Add(time.Second)
			checkActions(t, "keepalived priority 0", m.Receive(at, ka), nil)
			checkState(t, m, StateBackup, at.Add(skew100))
			if d := m.Status().Dropped; len(d) != 0 {
				t.Errorf("Dropped = %v, want none", d)
			}
		})
	}
}

// Every receive check of section 7.1 (and ours): the packet is counted under its reason and
// changes nothing else, in Backup and in Master, whether it claims priority 0 (which would
// shorten a Backup's timer or make a Master advertise) or 254 (which would reset a Backup's
// timer or make a Master step down).
func TestDropChangesNothing(t *testing.T) {
	setVersion := func(v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[0] = v<<4 | b[0]&0x0f; return b }
	}
	setByte := func(i int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[i] = v; return b }
	}
	tests := []struct {
		name   string
		cfg    func(*MachineConfig) // nil: testConfig
		packet func(t *testing.T, priority uint8) Inbound
		reason string
	}{
		{"TTL 254", nil, func(t *testing.T, p uint8) Inbound {
			in := peerAdvert(t, p, nil)
			in.TTL = 254
			return in
		}, DropTTL},
		{"TTL 1", nil, func(t *testing.T, p uint8) Inbound {
			in := peerAdvert(t, p, nil)
			in.TTL = 1
			return in
		}, DropTTL},
		{"no source", nil, func(t *testing.T, p uint8) Inbound {
			in := peerAdvert(t, p, nil)
			in.Src = netip.Addr{}
			return in
		}, DropSource},
		{"IPv6 source", nil, func(t *testing.T, p uint8) Inbound {
			in := peerAdvert(t, p, nil)
			in.Src = netip.MustParseAddr("2001:db8::2")
			return in
		}, DropSource},
		{"version 3", nil, func(t *testing.T, p uint8) Inbound { return rawPeer(t, p, setVersion(3), true) }, DropVersion},
		{"version 1", nil, func(t *testing.T, p uint8) Inbound { return rawPeer(t, p, setVersion(1), true) }, DropVersion},
		{"type 2", nil, func(t *testing.T, p uint8) Inbound { return rawPeer(t, p, setByte(0, 0x22), true) }, DropType},
		{"truncated", nil, func(t *testing.T, p uint8) Inbound {
			return rawPeer(t, p, func(b []byte) []byte { return b[:len(b)-1] }, false)
		}, DropLength},
		{"count larger than packet", nil, func(t *testing.T, p uint8) Inbound { return rawPeer(t, p, setByte(3, 3), true) }, DropLength},
		{"trailing bytes", nil, func(t *testing.T, p uint8) Inbound {
			return rawPeer(t, p, func(b []byte) []byte { return append(b, 0, 0, 0, 0) }, true)
		}, DropLength},
		{"empty", nil, func(t *testing.T, p uint8) Inbound {
			in := peerAdvert(t, p, nil)
			in.Payload = nil
			return in
		}, DropLength},
		{"bad checksum", nil, func(t *testing.T, p uint8) Inbound {
			return rawPeer(t, p, func(b []byte) []byte { b[7] ^= 1; return b }, false)
		}, DropChecksum},
		{"corrupted priority", nil, func(t *testing.T, p uint8) Inbound {
			return rawPeer(t, p, func(b []byte) []byte { b[2] ^= 0x80; return b }, false)
		}, DropChecksum},
		{"other VRID", nil, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, func(a *Advertisement) { a.VRID = 52 })
		}, DropVRID},
		{"VRID 0", nil, func(t *testing.T, p uint8) Inbound { return rawPeer(t, p, setByte(1, 0), true) }, DropVRID},
		{"own advert looped back", nil, func(t *testing.T, p uint8) Inbound {
			in := peerAdvert(t, p, nil)
			in.Src = ourIP
			return in
		}, DropOwn},
		{"unicast: not a peer", func(c *MachineConfig) { c.Peers = addrs("192.0.2.3") }, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, nil)
		}, DropPeer},
		{"auth type 1, we use 0", nil, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, func(a *Advertisement) { a.AuthType, a.AuthData = AuthSimple, secret12 })
		}, DropAuthType},
		{"auth type 2", nil, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, func(a *Advertisement) { a.AuthType = AuthAH })
		}, DropAuthType},
		{"unknown auth type 7", nil, func(t *testing.T, p uint8) Inbound { return rawPeer(t, p, setByte(4, 7), true) }, DropAuthType},
		{"auth type 0, we use 1", func(c *MachineConfig) { c.AuthType, c.AuthData = AuthSimple, secret12 }, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, nil)
		}, DropAuthType},
		{"wrong password", func(c *MachineConfig) { c.AuthType, c.AuthData = AuthSimple, secret12 }, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, func(a *Advertisement) {
				a.AuthType, a.AuthData = AuthSimple, [8]byte{'s', 'e', 'c', 'r', 'e', 't', '1', '3'}
			})
		}, DropAuthData},
		{"interval 2 s", nil, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, func(a *Advertisement) { a.Interval = 2 * time.Second })
		}, DropInterval},
		{"interval 0", nil, func(t *testing.T, p uint8) Inbound { return rawPeer(t, p, setByte(5, 0), true) }, DropInterval},
		{"one address missing", nil, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, func(a *Advertisement) { a.Addresses = addrs("192.0.2.100") })
		}, DropAddresses},
		{"one address extra", nil, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, func(a *Advertisement) { a.Addresses = addrs("192.0.2.100", "192.0.2.101", "192.0.2.102") })
		}, DropAddresses},
		{"other address", nil, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, func(a *Advertisement) { a.Addresses = addrs("192.0.2.100", "192.0.2.102") })
		}, DropAddresses},
		{"duplicated address", nil, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, func(a *Advertisement) { a.Addresses = addrs("192.0.2.100", "192.0.2.100") })
		}, DropAddresses},
		{"no address", nil, func(t *testing.T, p uint8) Inbound {
			return peerAdvert(t, p, func(a *Advertisement) { a.Addresses = nil })
		}, DropAddresses},
	}
	for _, tt := range tests {
		for _, state := range []State{StateBackup, StateMaster} {
			for _, priority := range []uint8{0, 254} {
				t.Run(fmt.Sprintf("%s/%v/priority %d", tt.name, state, priority), func(t *testing.T) {
					cfg := testConfig(100, true)
					if tt.cfg != nil {
						tt.cfg(&cfg)
					}
					m := newTestMachine(t, cfg)
					m.Start(t0)
					at := t0.Add(time.Second)
					if state == StateMaster {
						m.Tick(m.Deadline())
						at = m.Deadline().Add(-500 * time.Millisecond)
					} else {
						// Hear a Master first, so that MasterIP is set.
						good := peerAdvert(t, 150, func(a *Advertisement) { a.AuthType, a.AuthData = cfg.AuthType, cfg.AuthData })
						if cfg.Peers != nil {
							good.Src = cfg.Peers[0]
						}
						m.Receive(t0.Add(500*time.Millisecond), good)
						if m.Status().MasterIP != good.Src {
							t.Fatalf("setup: the good advert was not accepted: %+v", m.Status())
						}
					}
					before, deadline := m.Status(), m.Deadline()

					checkActions(t, "Receive", m.Receive(at, tt.packet(t, priority)), nil)

					want := before
					want.Dropped = map[string]uint64{tt.reason: 1}
					if diff := cmp.Diff(want, m.Status(), cmpAddr); diff != "" {
						t.Errorf("Status after a %q drop (-want +got):\n%s", tt.reason, diff)
					}
					if got := m.Deadline(); !got.Equal(deadline) {
						t.Errorf("Deadline moved from %v to %v", deadline, got)
					}
					// And the timer still fires exactly when it would have.
					if acts := m.Tick(deadline.Add(-1)); len(acts) != 0 {
						t.Errorf("Tick before the deadline: %v", acts)
					}
					if acts := m.Tick(deadline); len(acts) == 0 || m.Status().State != StateMaster {
						t.Errorf("Tick at the deadline: %v, state %v; want an advert, master", acts, m.Status().State)
					}
				})
			}
		}
	}
}

func TestReceiveInInitializeIgnored(t *testing.T) {
	m := newTestMachine(t, testConfig(100, true))
	checkActions(t, "Receive before Start", m.Receive(t0, peerAdvert(t, 0, nil)), nil)
	if diff := cmp.Diff(MachineStatus{Priority: 100, MasterAdverInterval: time.Second, Dropped: map[string]uint64{}, Preempt: true}, m.Status(), cmpAddr); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
	checkState(t, m, StateInitialize, time.Time{})
}

func TestSetPriority(t *testing.T) {
	t.Run("master lowers itself and keeps advertising", func(t *testing.T) {
		m, up := startMaster(t, testConfig(200, true))
		at := up.Add(250 * time.Millisecond)
		checkActions(t, "SetPriority(50)", m.SetPriority(at, 50), []Action{SendAdvert{ourAdvert(50)}})
		checkState(t, m, StateMaster, at.Add(time.Second))
		checkActions(t, "Adver_Timer", m.Tick(at.Add(time.Second)), []Action{SendAdvert{ourAdvert(50)}})
		if got := m.Status().Priority; got != 50 {
			t.Errorf("Priority = %d, want 50", got)
		}
		// Now a 100 is higher: step down.
		at = at.Add(1500 * time.Millisecond)
		checkActions(t, "advert 100", m.Receive(at, peerAdvert(t, 100, nil)),
			[]Action{Transition{From: StateMaster, To: StateBackup, Cause: CausePreempted, At: at}})
		checkState(t, m, StateBackup, at.Add(MasterDownInterval(time.Second, 50)))
	})
	t.Run("backup: new priority for the next comparison and timer", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		m.Start(t0)
		checkActions(t, "SetPriority(150)", m.SetPriority(t0.Add(time.Second), 150), nil)
		checkState(t, m, StateBackup, t0.Add(down100)) // a running timer keeps its deadline
		at := t0.Add(2 * time.Second)
		m.Receive(at, peerAdvert(t, 150, nil)) // equal: reset with the new skew
		checkState(t, m, StateBackup, at.Add(down150))
		m.Receive(at.Add(time.Second), peerAdvert(t, 120, nil)) // lower and we preempt: no reset
		checkState(t, m, StateBackup, at.Add(down150))
	})
	t.Run("initialize: Start uses it", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		checkActions(t, "SetPriority(255)", m.SetPriority(t0, 255), nil)
		checkActions(t, "Start", m.Start(t0), []Action{SendAdvert{ourAdvert(255)},
			Transition{From: StateInitialize, To: StateMaster, Cause: CauseOwner, At: t0}})
	})
	t.Run("zero and unchanged do nothing", func(t *testing.T) {
		m, up := startMaster(t, testConfig(100, true))
		before, deadline := m.Status(), m.Deadline()
		checkActions(t, "SetPriority(0)", m.SetPriority(up.Add(time.Millisecond), 0), nil)
		checkActions(t, "SetPriority(100)", m.SetPriority(up.Add(time.Millisecond), 100), nil)
		checkState(t, m, StateMaster, deadline)
		if diff := cmp.Diff(before, m.Status(), cmpAddr); diff != "" {
			t.Errorf("Status (-before +after):\n%s", diff)
		}
	})
}

func TestShutdown(t *testing.T) {
	t.Run("master resigns", func(t *testing.T) {
		m, up := startMaster(t, testConfig(100, true))
		at := up.Add(700 * time.Millisecond)
		checkActions(t, "Shutdown", m.Shutdown(at), []Action{
			SendAdvert{ourAdvert(0)},
			Transition{From: StateMaster, To: StateInitialize, Cause: CauseShutdown, At: at},
		})
		checkState(t, m, StateInitialize, time.Time{})
		want := MachineStatus{State: StateInitialize, Priority: 100, MasterAdverInterval: time.Second, Since: at, Transitions: 3, Dropped: map[string]uint64{}, Preempt: true}
		if diff := cmp.Diff(want, m.Status(), cmpAddr); diff != "" {
			t.Errorf("Status (-want +got):\n%s", diff)
		}
		checkActions(t, "Tick after Shutdown", m.Tick(at.Add(time.Hour)), nil)
		checkActions(t, "Receive after Shutdown", m.Receive(at.Add(time.Second), peerAdvert(t, 0, nil)), nil)
		checkActions(t, "second Shutdown", m.Shutdown(at.Add(time.Second)), nil)
		// And it can start again.
		again := at.Add(10 * time.Second)
		checkActions(t, "Start again", m.Start(again), []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: again}})
		checkState(t, m, StateBackup, again.Add(down100))
	})
	t.Run("backup", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		m.Start(t0)
		at := t0.Add(time.Second)
		checkActions(t, "Shutdown", m.Shutdown(at), []Action{Transition{From: StateBackup, To: StateInitialize, Cause: CauseShutdown, At: at}})
		checkState(t, m, StateInitialize, time.Time{})
	})
	t.Run("initialize", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		checkActions(t, "Shutdown", m.Shutdown(t0), nil)
	})
}

func TestNewMachineErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*MachineConfig)
	}{
		{"VRID 0", func(c *MachineConfig) { c.VRID = 0 }},
		{"priority 0", func(c *MachineConfig) { c.Priority = 0 }},
		{"interval 1.5 s", func(c *MachineConfig) { c.AdvertInterval = 1500 * time.Millisecond }},
		{"interval 256 s", func(c *MachineConfig) { c.AdvertInterval = 256 * time.Second }},
		{"no primary", func(c *MachineConfig) { c.Primary = netip.Addr{} }},
		{"IPv6 primary", func(c *MachineConfig) { c.Primary = netip.MustParseAddr("2001:db8::1") }},
		{"no virtual address", func(c *MachineConfig) { c.VirtualIPs = nil }},
		{"IPv6 virtual address", func(c *MachineConfig) { c.VirtualIPs = addrs("2001:db8::1") }},
		{"duplicate virtual address", func(c *MachineConfig) { c.VirtualIPs = addrs("192.0.2.100", "192.0.2.100") }},
		{"auth AH", func(c *MachineConfig) { c.AuthType = AuthAH }},
		{"auth data without auth type", func(c *MachineConfig) { c.AuthData = secret12 }},
		{"IPv6 peer", func(c *MachineConfig) { c.Peers = addrs("2001:db8::2") }},
		{"peer is ourselves", func(c *MachineConfig) { c.Peers = addrs("192.0.2.1") }},
	}
	for _, tt := range tests {
		cfg := testConfig(100, true)
		tt.modify(&cfg)
		m, err := NewMachine(cfg)
		if !errors.Is(err, ErrMachineConfig) || m != nil {
			t.Errorf("%s: NewMachine = %v, %v; want nil, an error wrapping ErrMachineConfig", tt.name, m, err)
		}
	}
	// Defaults and normalisation.
	cfg := testConfig(100, true)
	cfg.AdvertInterval = 0
	cfg.Primary = netip.MustParseAddr("::ffff:192.0.2.1")
	m, err := NewMachine(cfg)
	if err != nil {
		t.Fatalf("NewMachine with interval 0 and a 4in6 primary: %v", err)
	}
	m.Start(t0)
	checkState(t, m, StateBackup, t0.Add(down100))
	in := peerAdvert(t, 100, nil)
	in.Src = ourIP
	m.Receive(t0, in)
	if got := m.Status().Dropped[DropOwn]; got != 1 {
		t.Errorf("Dropped[own] = %d, want 1 (primary must be unmapped)", got)
	}
}

func TestNewMachineCopiesSlices(t *testing.T) {
	cfg := testConfig(100, true)
	cfg.VirtualIPs = addrs("192.0.2.100", "192.0.2.101")
	m := newTestMachine(t, cfg)
	cfg.VirtualIPs[0] = netip.MustParseAddr("192.0.2.200")
	m.Start(t0)
	acts := m.Tick(m.Deadline())
	adv := acts[0].(SendAdvert).Advert
	if diff := cmp.Diff(testVIPs, adv.Addresses, cmpAddr); diff != "" {
		t.Errorf("advertised addresses (-want +got):\n%s", diff)
	}
	adv.Addresses[0] = netip.MustParseAddr("192.0.2.250") // the caller may scribble on it
	acts = m.Tick(m.Deadline())
	if diff := cmp.Diff(testVIPs, acts[0].(SendAdvert).Advert.Addresses, cmpAddr); diff != "" {
		t.Errorf("advertised addresses after the caller modified a previous advert (-want +got):\n%s", diff)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateInitialize: "initialize", StateBackup: "backup", StateMaster: "master", 7: "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", uint8(s), got, want)
		}
	}
}

// pairSim wires two Machines back to back: every SendAdvert of one is delivered to the other
// after latency. It is a discrete-event simulation on explicit times: no clock, no sleeps.
type pairSim struct {
	t       *testing.T
	m       [2]*Machine
	ip      [2]netip.Addr
	start   [2]time.Time
	started [2]bool
	latency time.Duration
	queue   []pairDelivery
	now     time.Time
	trace   []string
	// samples of the number of live Masters after each instant that had events.
	samples []pairSample
	// dead nodes neither tick nor send nor receive (a crash or a cut cable).
	dead [2]bool
	// lastRecv is when each node last received an advert.
	lastRecv [2]time.Time
	// becameMaster is when each node last became Master.
	becameMaster [2]time.Time
}

type pairDelivery struct {
	at time.Time
	to int
	in Inbound
}

type pairSample struct {
	at      time.Time
	masters int
}

func (s *pairSim) perform(from int, acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case SendAdvert:
			b, err := a.Advert.Marshal(PseudoHeader{Src: s.ip[from], Dst: groupIP})
			if err != nil {
				s.t.Fatalf("node %d sent an advert that does not marshal: %v", from, err)
			}
			s.queue = append(s.queue, pairDelivery{at: s.now.Add(s.latency), to: 1 - from,
				in: Inbound{Src: s.ip[from], Dst: groupIP, TTL: 255, Payload: b}})
			s.trace = append(s.trace, fmt.Sprintf("%v node %d advert priority %d", s.now.Sub(t0), from, a.Advert.Priority))
		case Transition:
			if a.To == StateMaster {
				s.becameMaster[from] = a.At
			}
			if !a.At.Equal(s.now) {
				s.t.Errorf("node %d transition at %v, simulation time %v", from, a.At, s.now)
			}
			s.trace = append(s.trace, fmt.Sprintf("%v node %d %v -> %v (%s)", s.now.Sub(t0), from, a.From, a.To, a.Reason))
		}
	}
}

func (s *pairSim) masters() int {
	n := 0
	for i, m := range s.m {
		if !s.dead[i] && m.Status().State == StateMaster {
			n++
		}
	}
	return n
}

// runUntil processes, instant by instant, the deliveries, starts and timers due at or before
// end. Within an instant: deliveries first, then starts, then timers.
func (s *pairSim) runUntil(end time.Time) {
	for {
		next := time.Time{}
		consider := func(at time.Time) {
			if !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		for _, d := range s.queue {
			consider(d.at)
		}
		for i := range s.m {
			switch {
			case s.dead[i]:
			case !s.started[i]:
				consider(s.start[i])
			default:
				consider(s.m[i].Deadline())
			}
		}
		if next.IsZero() || next.After(end) {
			return
		}
		s.now = next
		var due, rest []pairDelivery
		for _, d := range s.queue {
			if d.at.Equal(next) {
				due = append(due, d)
			} else {
				rest = append(rest, d)
			}
		}
		s.queue = rest
		// With zero latency, perform queues deliveries for this same instant; the next
		// iteration handles them.
		for _, d := range due {
			if s.dead[d.to] || s.dead[1-d.to] {
				continue
			}
			s.lastRecv[d.to] = next
			s.perform(d.to, s.m[d.to].Receive(next, d.in))
		}
		for i := range s.m {
			if !s.started[i] && s.start[i].Equal(next) {
				s.started[i] = true
				s.perform(i, s.m[i].Start(next))
			}
		}
		for i := range s.m {
			if s.started[i] && !s.dead[i] {
				s.perform(i, s.m[i].Tick(next))
			}
		}
		// Keep one sample per instant: the state once all of its events are handled.
		if k := len(s.samples) - 1; k >= 0 && s.samples[k].at.Equal(next) {
			s.samples = s.samples[:k]
		}
		s.samples = append(s.samples, pairSample{next, s.masters()})
	}
}

type pairNode struct {
	priority uint8
	preempt  bool
	start    time.Duration // after t0
}

func newPairSim(t *testing.T, a, b pairNode, latency time.Duration) *pairSim {
	t.Helper()
	return newPairSimVersion(t, a, b, latency, pairVersion{2, time.Second})
}

// pairVersion is the protocol both nodes of a pairSim speak, and their advert interval.
type pairVersion struct {
	version  uint8
	interval time.Duration
}

// down and skew are Master_Down_Interval and Skew_Time for priority p (both nodes advertise
// the same interval, so a version 3 Backup's learned interval is its own).
func (v pairVersion) down(p uint8) time.Duration {
	if v.version == 3 {
		return MasterDownIntervalV3(v.interval, p)
	}
	return MasterDownInterval(v.interval, p)
}

func (v pairVersion) skew(p uint8) time.Duration {
	if v.version == 3 {
		return SkewTimeV3(p, v.interval)
	}
	return SkewTime(p)
}

func newPairSimVersion(t *testing.T, a, b pairNode, latency time.Duration, v pairVersion) *pairSim {
	t.Helper()
	s := &pairSim{t: t, latency: latency, ip: [2]netip.Addr{ourIP, peerIP}}
	for i, n := range []pairNode{a, b} {
		cfg := testConfig(n.priority, n.preempt)
		cfg.Version, cfg.AdvertInterval = v.version, v.interval
		cfg.Primary = s.ip[i]
		s.m[i] = newTestMachine(t, cfg)
		s.start[i] = t0.Add(n.start)
	}
	return s
}

func (s *pairSim) master() int {
	for i, m := range s.m {
		if !s.dead[i] && m.Status().State == StateMaster {
			return i
		}
	}
	return -1
}

// checkStable asserts that from `from` on there was always exactly one Master, and that two
// Masters never coexisted for longer than one advert's flight time.
func (s *pairSim) checkStable(from time.Time) {
	s.t.Helper()
	var twoSince time.Time
	for _, smp := range s.samples {
		if smp.masters == 2 && twoSince.IsZero() {
			twoSince = smp.at
		}
		if smp.masters < 2 && !twoSince.IsZero() {
			if d := smp.at.Sub(twoSince); d > s.latency {
				s.t.Errorf("two Masters for %v from %v (latency %v)\n%s", d, twoSince.Sub(t0), s.latency, strings.Join(s.trace, "\n"))
			}
			twoSince = time.Time{}
		}
		if !smp.at.Before(from) && smp.masters != 1 {
			s.t.Errorf("%d Masters at %v, after convergence was due (%v)\n%s", smp.masters, smp.at.Sub(t0), from.Sub(t0), strings.Join(s.trace, "\n"))
			return
		}
	}
}

func TestPairElection(t *testing.T) {
	const later = 10 * time.Second
	tests := []struct {
		name     string
		a, b     pairNode // a is 192.0.2.1, b is 192.0.2.2
		winner   int
		masterAt time.Duration // when the winner last became Master
	}{
		{"equal, together, preempt: greater address wins", pairNode{100, true, 0}, pairNode{100, true, 0}, 1, down100},
		{"equal, together, no preempt: greater address wins", pairNode{100, false, 0}, pairNode{100, false, 0}, 1, down100},
		{"higher wins, together", pairNode{150, false, 0}, pairNode{100, false, 0}, 0, down150},
		{"higher wins, together, no preempt", pairNode{100, false, 0}, pairNode{150, false, 0}, 1, down150},
		{"higher joins later and preempts", pairNode{100, true, 0}, pairNode{150, true, later}, 1, later + down150},
		{"higher joins later without preempt", pairNode{100, true, 0}, pairNode{150, false, later}, 0, down100},
		{"equal with greater address joins later: no preempt on a tie", pairNode{100, true, 0}, pairNode{100, true, later}, 0, down100},
		{"owner joins later and always preempts", pairNode{100, true, 0}, pairNode{255, false, later}, 1, later},
		{"owner first, 254 later", pairNode{255, false, 0}, pairNode{254, true, later}, 0, 0},
		{"two owners: greater address wins", pairNode{255, true, 0}, pairNode{255, true, 0}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newPairSim(t, tt.a, tt.b, time.Millisecond)
			s.runUntil(t0.Add(30 * time.Second))
			if got := s.master(); got != tt.winner || s.masters() != 1 {
				t.Fatalf("Master = node %d (%d Masters), want node %d\n%s", got, s.masters(), tt.winner, strings.Join(s.trace, "\n"))
			}
			if got, want := s.becameMaster[tt.winner], t0.Add(tt.masterAt); !got.Equal(want) {
				t.Errorf("winner became Master at %v, want %v", got.Sub(t0), tt.masterAt)
			}
			if ip := s.m[1-tt.winner].Status().MasterIP; ip != s.ip[tt.winner] {
				t.Errorf("the Backup's MasterIP = %v, want %v", ip, s.ip[tt.winner])
			}
		})
	}
}

// Every priority and preempt combination, started together or one after the other, with zero,
// LAN and slow-link latency: the pair converges to exactly one Master by the time the RFC says,
// never has two Masters for longer than an advert's flight time, and fails over at exactly
// Skew_Time after a priority-0 advert or Master_Down_Interval after the Master went silent.
func TestPairConvergesAllCombinations(t *testing.T) {
	pairConvergesAll(t, pairVersion{2, time.Second})
}

// The same for version 3 at 100 ms adverts, every time scaled with the interval (starts 0,
// 1 s and 150 ms apart, latencies 0, 1 ms and 10 ms), and the RFC 9568 timers.
func TestPairConvergesAllCombinationsV3(t *testing.T) {
	pairConvergesAll(t, pairVersion{3, 100 * time.Millisecond})
}

func pairConvergesAll(t *testing.T, v pairVersion) {
	iv := v.interval
	priorities := []uint8{1, 100, 150, 254, 255}
	starts := [][2]time.Duration{{0, 0}, {0, 10 * iv}, {10 * iv, 0}, {0, 3 * iv / 2}}
	latencies := []time.Duration{0, time.Millisecond, iv / 10}
	n := 0
	for _, pa := range priorities {
		for _, pb := range priorities {
			for _, prA := range []bool{true, false} {
				for _, prB := range []bool{true, false} {
					for _, st := range starts {
						for _, lat := range latencies {
							for _, kill := range []bool{false, true} {
								n++
								a, b := pairNode{pa, prA, st[0]}, pairNode{pb, prB, st[1]}
								name := fmt.Sprintf("a%+v/b%+v/latency %v/kill %v", a, b, lat, kill)
								pairCheck(t, name, a, b, lat, kill, v)
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d simulations", n)
}

func pairCheck(t *testing.T, name string, a, b pairNode, lat time.Duration, kill bool, v pairVersion) {
	t.Helper()
	s := newPairSimVersion(t, a, b, lat, v)
	nodes := [2]pairNode{a, b}
	lastStart := t0.Add(max(a.start, b.start))
	converge := lastStart.Add(max(v.down(a.priority), v.down(b.priority)) + lat)
	horizon := 40 * v.interval
	s.runUntil(t0.Add(horizon))
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: %s\n%s", name, fmt.Sprintf(format, args...), strings.Join(s.trace, "\n"))
	}
	s.checkStable(converge)
	w := s.master()
	if w < 0 || s.masters() != 1 {
		fail("%d Masters at %v", s.masters(), horizon)
		return
	}
	loser := nodes[1-w]
	if loser.priority > nodes[w].priority && (loser.preempt || loser.priority == 255) {
		fail("node %d (priority %d, preempt %v) is Backup under a priority %d Master", 1-w, loser.priority, loser.preempt, nodes[w].priority)
	}
	if loser.priority == nodes[w].priority && a.start == b.start && w != 1 {
		fail("equal priorities started together: node %d won, want the greater address", w)
	}
	for i, m := range s.m {
		if d := m.Status().Dropped; len(d) != 0 {
			fail("node %d dropped valid adverts: %v", i, d)
		}
	}

	// Fail over: the Master resigns (priority 0) or dies silently.
	off := t0.Add(horizon)
	s.runUntil(off.Add(-1))
	s.now = off
	other := 1 - w
	var want time.Time
	if kill {
		s.dead[w] = true
		s.runUntil(off) // anything in flight at this instant is lost
		want = s.lastRecv[other].Add(v.down(nodes[other].priority))
	} else {
		s.perform(w, s.m[w].Shutdown(off))
		want = off.Add(lat + v.skew(nodes[other].priority))
	}
	s.runUntil(off.Add(20 * v.interval))
	if s.master() != other || s.masters() != 1 {
		fail("after node %d went away (kill %v): Master = %d, %d Masters", w, kill, s.master(), s.masters())
		return
	}
	if !s.becameMaster[other].Equal(want) {
		fail("node %d took over at %v, want %v", other, s.becameMaster[other].Sub(t0), want.Sub(t0))
	}
}

// A Machine is driven with explicit times; the caller performs the returned actions and
// calls Tick at Deadline.
func ExampleMachine() {
	m, err := NewMachine(MachineConfig{
		VRID: 51, Priority: 100, AdvertInterval: time.Second, Preempt: true,
		Primary:    netip.MustParseAddr("192.0.2.1"),
		VirtualIPs: []netip.Addr{netip.MustParseAddr("192.0.2.100")},
	})
	if err != nil {
		panic(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	show := func(acts []Action) {
		for _, a := range acts {
			switch a := a.(type) {
			case SendAdvert:
				b, _ := a.Advert.MarshalBinary()
				fmt.Printf("send advert priority %d: % x\n", a.Advert.Priority, b)
			case Transition:
				fmt.Printf("%v: %v -> %v\n", a.At.Sub(start), a.From, a.To)
			}
		}
	}
	show(m.Start(start))
	fmt.Println("next timer in", m.Deadline().Sub(start))
	show(m.Tick(m.Deadline()))
	show(m.Shutdown(m.Deadline()))
	// Output:
	// 0s: initialize -> backup
	// next timer in 3.609375s
	// send advert priority 100: 21 33 64 01 00 01 b8 65 c0 00 02 64 00 00 00 00 00 00 00 00
	// 3.609375s: backup -> master
	// send advert priority 0: 21 33 00 01 00 01 1c 66 c0 00 02 64 00 00 00 00 00 00 00 00
	// 4.609375s: master -> initialize
}

// An interface that cannot carry the protocol (deleted, down, no carrier) takes the node out
// to Initialize, sending nothing, until ClearFault; it then rejoins as Start would.
func TestFault(t *testing.T) {
	const gone, back = "interface vrt0 gone", "interface vrt0 back"
	checkFault := func(t *testing.T, m *Machine, want string) {
		t.Helper()
		if st := m.Status(); st.Fault != want || (want != "" && st.MasterIP.IsValid()) {
			t.Errorf("Status: Fault %q, MasterIP %v; want Fault %q and no Master known", st.Fault, st.MasterIP, want)
		}
	}
	t.Run("master leaves, sends nothing, rejoins as backup", func(t *testing.T) {
		m, up := startMaster(t, testConfig(100, true))
		at := up.Add(300 * time.Millisecond)
		acts := m.Fault(at, CauseInterfaceGone, gone)
		checkActions(t, "Fault", acts, []Action{Transition{From: StateMaster, To: StateInitialize, Cause: CauseInterfaceGone, At: at}})
		if tr := acts[0].(Transition); tr.Reason != gone {
			t.Errorf("Reason = %q, want %q", tr.Reason, gone)
		}
		checkState(t, m, StateInitialize, time.Time{})
		checkFault(t, m, gone)
		checkActions(t, "Tick while faulted", m.Tick(at.Add(time.Hour)), nil)
		checkActions(t, "Receive while faulted", m.Receive(at.Add(time.Second), peerAdvert(t, 0, nil)), nil)
		checkActions(t, "Start while faulted", m.Start(at.Add(time.Second)), nil)
		checkActions(t, "TakeOver while faulted", m.TakeOver(at.Add(time.Second), "operator"), nil)
		checkActions(t, "Resign while faulted", m.Resign(at.Add(time.Second), "operator"), nil)
		checkActions(t, "second Fault", m.Fault(at.Add(2*time.Second), CauseInterfaceDown, "interface vrt0 down"), nil)
		checkFault(t, m, "interface vrt0 down")

		again := at.Add(10 * time.Second)
		acts = m.ClearFault(again, back)
		checkActions(t, "ClearFault", acts, []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseInterfaceBack, At: again}})
		if tr := acts[0].(Transition); tr.Reason != back {
			t.Errorf("Reason = %q, want %q", tr.Reason, back)
		}
		checkState(t, m, StateBackup, again.Add(down100))
		checkFault(t, m, "")
		checkActions(t, "second ClearFault", m.ClearFault(again.Add(time.Second), back), nil)
		checkState(t, m, StateBackup, again.Add(down100))
		checkActions(t, "Master_Down_Timer after rejoining", m.Tick(again.Add(down100)), []Action{
			SendAdvert{ourAdvert(100)},
			Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: again.Add(down100)},
		})
	})
	t.Run("backup leaves and rejoins", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		m.Start(t0)
		m.Receive(t0.Add(time.Second), peerAdvert(t, 150, nil))
		at := t0.Add(2 * time.Second)
		checkActions(t, "Fault", m.Fault(at, CauseInterfaceDown, "interface vrt0 has no carrier"),
			[]Action{Transition{From: StateBackup, To: StateInitialize, Cause: CauseInterfaceDown, At: at}})
		checkState(t, m, StateInitialize, time.Time{})
		checkFault(t, m, "interface vrt0 has no carrier")
		checkActions(t, "ClearFault", m.ClearFault(at.Add(time.Second), back),
			[]Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseInterfaceBack, At: at.Add(time.Second)}})
		checkState(t, m, StateBackup, at.Add(time.Second+down100))
	})
	t.Run("before start: start waits for ClearFault", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		checkActions(t, "Fault", m.Fault(t0, CauseInterfaceDown, ""), nil)
		checkFault(t, m, "interface down") // an empty reason is the cause's
		checkActions(t, "Start", m.Start(t0), nil)
		checkState(t, m, StateInitialize, time.Time{})
		at := t0.Add(5 * time.Second)
		checkActions(t, "ClearFault", m.ClearFault(at, back),
			[]Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseInterfaceBack, At: at}})
		checkState(t, m, StateBackup, at.Add(down100))
	})
	t.Run("owner rejoins as master", func(t *testing.T) {
		m := newTestMachine(t, testConfig(255, true))
		m.Start(t0)
		m.Fault(t0.Add(time.Second), CauseInterfaceGone, gone)
		at := t0.Add(3 * time.Second)
		checkActions(t, "ClearFault", m.ClearFault(at, back), []Action{SendAdvert{ourAdvert(255)},
			Transition{From: StateInitialize, To: StateMaster, Cause: CauseInterfaceBack, At: at}})
		checkState(t, m, StateMaster, at.Add(time.Second))
	})
	t.Run("shutdown while faulted", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		m.Start(t0)
		m.Fault(t0.Add(time.Second), CauseInterfaceGone, gone)
		checkActions(t, "Shutdown", m.Shutdown(t0.Add(2*time.Second)), nil)
		checkActions(t, "ClearFault after Shutdown", m.ClearFault(t0.Add(3*time.Second), back), nil)
		checkState(t, m, StateInitialize, time.Time{})
		at := t0.Add(4 * time.Second)
		checkActions(t, "Start", m.Start(at), []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: at}})
		checkState(t, m, StateBackup, at.Add(down100))
	})
}

// Passive mode: a passive Backup never takes over on its own, whatever it hears; only
// TakeOver (or leaving passive mode) makes it Master.
func TestPassive(t *testing.T) {
	t.Run("starts as backup even as the owner, and stays", func(t *testing.T) {
		m := newTestMachine(t, testConfig(255, true))
		m.SetPassive(t0, true)
		checkActions(t, "Start", m.Start(t0), []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: t0}})
		checkState(t, m, StateBackup, time.Time{})
		if st := m.Status(); !st.Passive {
			t.Errorf("Status().Passive = false after SetPassive(true)")
		}
		checkActions(t, "Tick much later", m.Tick(t0.Add(time.Hour)), nil)
		checkState(t, m, StateBackup, time.Time{})
	})
	tests := []struct {
		name   string
		in     uint8 // the advert's priority
		master bool  // MasterIP is the peer afterwards
	}{
		{"higher priority advert", 150, true},
		{"lower priority advert: no preemption", 50, true},
		{"priority 0: no Skew_Time takeover", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMachine(t, testConfig(100, true))
			m.Start(t0)
			m.Receive(t0.Add(time.Second), peerAdvert(t, 150, nil))
			at := t0.Add(1500 * time.Millisecond)
			m.SetPassive(at, true)
			checkState(t, m, StateBackup, time.Time{}) // the running Master_Down_Timer is stopped
			at = at.Add(time.Second)
			checkActions(t, "Receive", m.Receive(at, peerAdvert(t, tt.in, nil)), nil)
			checkState(t, m, StateBackup, time.Time{})
			if got := m.Status().MasterIP; (got == peerIP) != tt.master {
				t.Errorf("MasterIP = %v, want the peer: %v", got, tt.master)
			}
			checkActions(t, "Tick much later", m.Tick(at.Add(time.Hour)), nil)
			checkState(t, m, StateBackup, time.Time{})
		})
	}
	t.Run("leaving passive mode starts Master_Down_Timer", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		m.SetPassive(t0, true)
		m.Start(t0)
		at := t0.Add(10 * time.Second)
		m.SetPassive(at, false)
		checkState(t, m, StateBackup, at.Add(down100))
		checkActions(t, "Master_Down_Timer", m.Tick(at.Add(down100)), []Action{
			SendAdvert{ourAdvert(100)},
			Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: at.Add(down100)},
		})
		m.SetPassive(at.Add(5*time.Second), false) // unchanged: nothing
		checkState(t, m, StateMaster, at.Add(down100+time.Second))
	})
	t.Run("a passive master stays master, steps down to a passive backup", func(t *testing.T) {
		m, up := startMaster(t, testConfig(100, true))
		at := up.Add(200 * time.Millisecond)
		m.SetPassive(at, true)
		checkState(t, m, StateMaster, up.Add(time.Second))
		checkActions(t, "Adver_Timer", m.Tick(up.Add(time.Second)), []Action{SendAdvert{ourAdvert(100)}})
		at = up.Add(1500 * time.Millisecond)
		checkActions(t, "higher advert", m.Receive(at, peerAdvert(t, 150, nil)),
			[]Action{Transition{From: StateMaster, To: StateBackup, Cause: CausePreempted, At: at}})
		checkState(t, m, StateBackup, time.Time{})
	})
	t.Run("TakeOver makes a passive backup master", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		m.SetPassive(t0, true)
		m.Start(t0)
		m.Receive(t0.Add(time.Second), peerAdvert(t, 150, nil))
		at := t0.Add(1300 * time.Millisecond)
		acts := m.TakeOver(at, "swap")
		checkActions(t, "TakeOver", acts, []Action{
			SendAdvert{ourAdvert(100)},
			Transition{From: StateBackup, To: StateMaster, Cause: CauseTakeOver, At: at},
		})
		if tr := acts[1].(Transition); tr.Reason != "takeover: swap" {
			t.Errorf("Reason = %q, want %q", tr.Reason, "takeover: swap")
		}
		checkState(t, m, StateMaster, at.Add(time.Second))
		if got := m.Status().MasterIP; got != ourIP {
			t.Errorf("MasterIP = %v, want our own %v", got, ourIP)
		}
	})
}

// Resign: a Master sends priority 0 and becomes Backup, and does not preempt back until it
// next becomes Master through Master_Down_Timer or TakeOver.
func TestResign(t *testing.T) {
	t.Run("master resigns and does not preempt back", func(t *testing.T) {
		m, up := startMaster(t, testConfig(200, true))
		at := up.Add(400 * time.Millisecond)
		down200 := MasterDownInterval(time.Second, 200)
		acts := m.Resign(at, "maintenance")
		checkActions(t, "Resign", acts, []Action{
			SendAdvert{ourAdvert(0)},
			Transition{From: StateMaster, To: StateBackup, Cause: CauseResigned, At: at},
		})
		if tr := acts[1].(Transition); tr.Reason != "resigned: maintenance" {
			t.Errorf("Reason = %q, want %q", tr.Reason, "resigned: maintenance")
		}
		checkState(t, m, StateBackup, at.Add(down200))
		if st := m.Status(); !st.PreemptSuppressed || st.MasterIP.IsValid() {
			t.Errorf("Status: PreemptSuppressed %v, MasterIP %v; want suppressed, no master", st.PreemptSuppressed, st.MasterIP)
		}
		// The peer (100 < 200) takes over: its adverts reset the timer, no preemption.
		for i := range 5 {
			in := at.Add(time.Duration(i+1) * time.Second)
			checkActions(t, fmt.Sprintf("advert %d from the lower master", i), m.Receive(in, peerAdvert(t, 100, nil)), nil)
			checkState(t, m, StateBackup, in.Add(down200))
		}
		// It dies: Master_Down_Timer makes this node Master again, and preemption is back.
		last := at.Add(5 * time.Second)
		checkActions(t, "Master_Down_Timer", m.Tick(last.Add(down200)), []Action{
			SendAdvert{ourAdvert(200)},
			Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: last.Add(down200)},
		})
		if m.Status().PreemptSuppressed {
			t.Error("PreemptSuppressed after becoming Master through Master_Down_Timer")
		}
	})
	t.Run("the owner resigns too", func(t *testing.T) {
		m := newTestMachine(t, testConfig(255, true))
		m.Start(t0)
		at := t0.Add(time.Second)
		checkActions(t, "Resign", m.Resign(at, "upgrade"), []Action{
			SendAdvert{ourAdvert(0)},
			Transition{From: StateMaster, To: StateBackup, Cause: CauseResigned, At: at},
		})
		down255 := MasterDownInterval(time.Second, 255)
		checkState(t, m, StateBackup, at.Add(down255))
		in := at.Add(time.Second)
		m.Receive(in, peerAdvert(t, 100, nil)) // 255 always preempts, but not after Resign
		checkState(t, m, StateBackup, in.Add(down255))
	})
	t.Run("TakeOver ends the suppression", func(t *testing.T) {
		m, up := startMaster(t, testConfig(200, true))
		m.Resign(up, "swap")
		at := up.Add(time.Second)
		m.Receive(at, peerAdvert(t, 100, nil))
		m.TakeOver(at.Add(time.Second), "swap back")
		if m.Status().PreemptSuppressed {
			t.Error("PreemptSuppressed after TakeOver")
		}
		// Stepped down by a higher priority later, it preempts lower ones again.
		at = at.Add(1500 * time.Millisecond)
		m.Receive(at, peerAdvert(t, 250, nil))
		checkState(t, m, StateBackup, at.Add(MasterDownInterval(time.Second, 200)))
		deadline := m.Deadline()
		m.Receive(at.Add(time.Second), peerAdvert(t, 100, nil))
		checkState(t, m, StateBackup, deadline) // preempting: no reset
	})
	t.Run("a passive master resigns to a passive backup", func(t *testing.T) {
		m, up := startMaster(t, testConfig(100, true))
		m.SetPassive(up, true)
		at := up.Add(100 * time.Millisecond)
		checkActions(t, "Resign", m.Resign(at, "restore"), []Action{
			SendAdvert{ourAdvert(0)},
			Transition{From: StateMaster, To: StateBackup, Cause: CauseResigned, At: at},
		})
		checkState(t, m, StateBackup, time.Time{})
	})
	t.Run("no-op on backup and initialize", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		checkActions(t, "Resign in initialize", m.Resign(t0, "x"), nil)
		m.Start(t0)
		before := m.Status()
		checkActions(t, "Resign in backup", m.Resign(t0.Add(time.Second), "x"), nil)
		checkState(t, m, StateBackup, t0.Add(down100))
		if diff := cmp.Diff(before, m.Status(), cmpAddr); diff != "" {
			t.Errorf("Resign on a Backup changed the status (-before +after):\n%s", diff)
		}
	})
}

func TestTakeOver(t *testing.T) {
	t.Run("backup becomes master now", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, false))
		m.Start(t0)
		m.Receive(t0.Add(time.Second), peerAdvert(t, 150, nil))
		at := t0.Add(1700 * time.Millisecond)
		checkActions(t, "TakeOver", m.TakeOver(at, "operator"), []Action{
			SendAdvert{ourAdvert(100)},
			Transition{From: StateBackup, To: StateMaster, Cause: CauseTakeOver, At: at},
		})
		checkState(t, m, StateMaster, at.Add(time.Second))
		// A Master of higher priority that did not resign takes the role back (6.4.3).
		in := at.Add(300 * time.Millisecond)
		checkActions(t, "higher advert", m.Receive(in, peerAdvert(t, 150, nil)),
			[]Action{Transition{From: StateMaster, To: StateBackup, Cause: CausePreempted, At: in}})
	})
	t.Run("no-op on master and initialize", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		checkActions(t, "TakeOver in initialize", m.TakeOver(t0, "x"), nil)
		m, up := startMaster(t, testConfig(100, true))
		before := m.Status()
		checkActions(t, "TakeOver in master", m.TakeOver(up.Add(time.Millisecond), "x"), nil)
		checkState(t, m, StateMaster, up.Add(time.Second))
		if diff := cmp.Diff(before, m.Status(), cmpAddr); diff != "" {
			t.Errorf("TakeOver on a Master changed the status (-before +after):\n%s", diff)
		}
	})
}

func TestSetPreempt(t *testing.T) {
	m := newTestMachine(t, testConfig(100, false))
	m.Start(t0)
	at := t0.Add(time.Second)
	m.Receive(at, peerAdvert(t, 50, nil)) // no preempt: reset
	checkState(t, m, StateBackup, at.Add(down100))
	m.SetPreempt(true)
	if !m.Status().Preempt {
		t.Error("Status().Preempt = false after SetPreempt(true)")
	}
	m.Receive(at.Add(time.Second), peerAdvert(t, 50, nil)) // preempt: no reset
	checkState(t, m, StateBackup, at.Add(down100))
	checkActions(t, "preempting", m.Tick(at.Add(down100)), []Action{
		SendAdvert{ourAdvert(100)},
		Transition{From: StateBackup, To: StateMaster, Cause: CausePreempting, At: at.Add(down100)},
	})
}

// The short forms of the causes are what the appliance shows; they are part of the API.
func TestCauseString(t *testing.T) {
	for c, want := range map[Cause]string{
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
		99:                 "Cause(99)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Cause(%d).String() = %q, want %q", uint8(c), got, want)
		}
	}
}

// Exact RFC 9568 section 6.1 timer values (version 3): Skew_Time = ((256 - Priority) *
// Master_Adver_Interval) / 256, Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time,
// computed in nanoseconds (see SkewTimeV3).
const (
	skew100v3  = 60937500 * time.Nanosecond  // priority 100 at 100 ms: 60.9375 ms
	down100v3  = 360937500 * time.Nanosecond // 360.9375 ms
	down100v3s = 3609375 * time.Microsecond  // priority 100 at 1 s, as version 2
)

func TestTimersV3(t *testing.T) {
	tests := []struct {
		priority uint8
		interval time.Duration
		skew     time.Duration
		down     time.Duration
	}{
		{100, 100 * time.Millisecond, skew100v3, down100v3},
		{100, 10 * time.Millisecond, 6093750 * time.Nanosecond, 36093750 * time.Nanosecond},
		{100, time.Second, skew100, down100v3s},
		{150, 100 * time.Millisecond, 41406250 * time.Nanosecond, 341406250 * time.Nanosecond},
		{200, 100 * time.Millisecond, 21875 * time.Microsecond, 321875 * time.Microsecond},
		{254, 30 * time.Millisecond, 234375 * time.Nanosecond, 90234375 * time.Nanosecond},
		// 39062.5 ns and 40790039062.5 ns: the half nanosecond is truncated.
		{255, 10 * time.Millisecond, 39062 * time.Nanosecond, 30039062 * time.Nanosecond},
		{1, 40950 * time.Millisecond, 40790039062 * time.Nanosecond, 163640039062 * time.Nanosecond},
	}
	for _, tt := range tests {
		if got := SkewTimeV3(tt.priority, tt.interval); got != tt.skew {
			t.Errorf("SkewTimeV3(%d, %v) = %v, want %v", tt.priority, tt.interval, got, tt.skew)
		}
		if got := MasterDownIntervalV3(tt.interval, tt.priority); got != tt.down {
			t.Errorf("MasterDownIntervalV3(%v, %d) = %v, want %v", tt.interval, tt.priority, got, tt.down)
		}
		// And the Machine uses them: a Backup's first Master_Down_Timer, and after a
		// priority-0 advert, Skew_Time.
		cfg := testConfigV3(tt.priority, true, tt.interval)
		m := newTestMachine(t, cfg)
		m.Start(t0)
		if tt.priority == 255 {
			checkState(t, m, StateMaster, t0.Add(tt.interval))
			continue
		}
		checkState(t, m, StateBackup, t0.Add(tt.down))
		at := t0.Add(tt.interval)
		m.Receive(at, peerAdvertV3(t, 0, tt.interval, nil))
		checkState(t, m, StateBackup, at.Add(tt.skew))
	}
}

func testConfigV3(priority uint8, preempt bool, interval time.Duration) MachineConfig {
	cfg := testConfig(priority, preempt)
	cfg.Version, cfg.AdvertInterval = 3, interval
	return cfg
}

// ourAdvertV3 is what a Machine with testConfigV3 sends.
func ourAdvertV3(priority uint8, interval time.Duration) Advertisement {
	return Advertisement{Version: 3, Type: 1, VRID: 51, Priority: priority, Interval: interval,
		Addresses: testVIPs}
}

// peerAdvertV3 is a valid version 3 advert from peerIP to 224.0.0.18 for testConfigV3 with the
// given interval, modified by mod.
func peerAdvertV3(t *testing.T, priority uint8, interval time.Duration, mod func(*Advertisement)) Inbound {
	t.Helper()
	a := ourAdvertV3(priority, interval)
	a.Addresses = addrs("192.0.2.101", "192.0.2.100")
	if mod != nil {
		mod(&a)
	}
	b, err := a.Marshal(PseudoHeader{Src: peerIP, Dst: groupIP})
	if err != nil {
		t.Fatalf("Marshal(%+v): %v", a, err)
	}
	return Inbound{Src: peerIP, Dst: groupIP, TTL: 255, Payload: b}
}

func TestStartBackupThenMasterV3(t *testing.T) {
	const iv = 100 * time.Millisecond
	m := newTestMachine(t, testConfigV3(100, true, iv))
	checkActions(t, "Start", m.Start(t0), []Action{Transition{From: StateInitialize, To: StateBackup, Cause: CauseStart, At: t0}})
	checkState(t, m, StateBackup, t0.Add(down100v3))
	checkActions(t, "Tick 1 ns early", m.Tick(t0.Add(down100v3-1)), nil)
	up := t0.Add(down100v3)
	checkActions(t, "Tick at Master_Down_Interval", m.Tick(up), []Action{
		SendAdvert{ourAdvertV3(100, iv)},
		Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: up},
	})
	checkState(t, m, StateMaster, up.Add(iv))
	checkActions(t, "Tick 1 ns before Adver_Timer", m.Tick(up.Add(iv-1)), nil)
	checkActions(t, "Adver_Timer", m.Tick(up.Add(iv)), []Action{SendAdvert{ourAdvertV3(100, iv)}})
	checkState(t, m, StateMaster, up.Add(2*iv))
	want := MachineStatus{State: StateMaster, Priority: 100, MasterAdverInterval: iv, MasterIP: ourIP, Since: up,
		Transitions: 2, Dropped: map[string]uint64{}, Preempt: true}
	if diff := cmp.Diff(want, m.Status(), cmpAddr); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
}

// RFC 9568 section 6.4.2: a version 3 Backup adopts the Master's advertisement interval
// (Master_Adver_Interval) whenever an advert resets its Master_Down_Timer, and computes
// Skew_Time and Master_Down_Interval from it; version 2 drops such an advert instead.
func TestBackupLearnsMasterIntervalV3(t *testing.T) {
	const own = 100 * time.Millisecond
	tests := []struct {
		name     string
		preempt  bool
		priority uint8         // of the advert; ours is 100
		interval time.Duration // of the advert
		learned  time.Duration // Master_Adver_Interval afterwards
		reset    bool          // the advert resets Master_Down_Timer
	}{
		{"higher priority, 1 s", true, 150, time.Second, time.Second, true},
		{"higher priority, 10 ms", true, 150, 10 * time.Millisecond, 10 * time.Millisecond, true},
		{"higher priority, 40.95 s", true, 150, 40950 * time.Millisecond, 40950 * time.Millisecond, true},
		{"equal priority, 50 ms", true, 100, 50 * time.Millisecond, 50 * time.Millisecond, true},
		{"higher priority, same interval", true, 150, own, own, true},
		{"lower priority without preempt: accepted and learned", false, 50, 2 * time.Second, 2 * time.Second, true},
		{"lower priority with preempt: discarded, not learned", true, 50, 2 * time.Second, own, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMachine(t, testConfigV3(100, tt.preempt, own))
			m.Start(t0)
			first := m.Deadline()
			at := t0.Add(200 * time.Millisecond)
			checkActions(t, "advert", m.Receive(at, peerAdvertV3(t, tt.priority, tt.interval, nil)), nil)
			want := first
			if tt.reset {
				want = at.Add(MasterDownIntervalV3(tt.learned, 100))
			}
			checkState(t, m, StateBackup, want)
			st := m.Status()
			if st.MasterAdverInterval != tt.learned || len(st.Dropped) != 0 {
				t.Errorf("MasterAdverInterval = %v, Dropped %v; want %v, nothing dropped", st.MasterAdverInterval, st.Dropped, tt.learned)
			}
			// The Master resigns: Skew_Time of the learned interval, whatever the
			// priority-0 advert says (section 6.4.2 sets only the timer).
			resign := at.Add(100 * time.Millisecond)
			checkActions(t, "priority 0", m.Receive(resign, peerAdvertV3(t, 0, 20*time.Millisecond, nil)), nil)
			checkState(t, m, StateBackup, resign.Add(SkewTimeV3(100, tt.learned)))
			if got := m.Status().MasterAdverInterval; got != tt.learned {
				t.Errorf("after priority 0: MasterAdverInterval = %v, want %v", got, tt.learned)
			}
			// Taking over, the node advertises its own interval and uses it.
			upAt := m.Deadline()
			checkActions(t, "Tick at Skew_Time", m.Tick(upAt), []Action{
				SendAdvert{ourAdvertV3(100, own)},
				Transition{From: StateBackup, To: StateMaster, Cause: CausePriorityZero, At: upAt},
			})
			checkState(t, m, StateMaster, upAt.Add(own))
			if got := m.Status().MasterAdverInterval; got != own {
				t.Errorf("as Master: MasterAdverInterval = %v, want our own %v", got, own)
			}
		})
	}
}

// The exact timers of the brief: priority 100 following a Master at 100 ms takes over
// 360.9375 ms after its last advert, at 10 ms 36.09375 ms after, even when configured at 1 s.
func TestBackupTakesOverAtLearnedIntervalV3(t *testing.T) {
	for _, tt := range []struct {
		master time.Duration
		down   time.Duration
	}{
		{100 * time.Millisecond, down100v3},
		{10 * time.Millisecond, 36093750 * time.Nanosecond},
	} {
		m := newTestMachine(t, testConfigV3(100, true, time.Second))
		m.Start(t0)
		var last time.Time
		for i := 1; i <= 5; i++ {
			last = t0.Add(time.Duration(i) * tt.master)
			m.Receive(last, peerAdvertV3(t, 150, tt.master, nil))
		}
		checkState(t, m, StateBackup, last.Add(tt.down))
		checkActions(t, "Tick 1 ns early", m.Tick(last.Add(tt.down-1)), nil)
		checkActions(t, "Master_Down_Timer", m.Tick(last.Add(tt.down)), []Action{
			SendAdvert{ourAdvertV3(100, time.Second)},
			Transition{From: StateBackup, To: StateMaster, Cause: CauseMasterDown, At: last.Add(tt.down)},
		})
	}
}

// Section 6.4.3: a Master that steps down for a higher priority adopts that Master's
// interval for its Master_Down_Timer.
func TestMasterStepsDownLearnsIntervalV3(t *testing.T) {
	m, up := startMasterV3(t, testConfigV3(100, true, 100*time.Millisecond))
	at := up.Add(50 * time.Millisecond)
	checkActions(t, "higher priority at 50 ms", m.Receive(at, peerAdvertV3(t, 200, 50*time.Millisecond, nil)), []Action{
		Transition{From: StateMaster, To: StateBackup, Cause: CausePreempted, At: at},
	})
	checkState(t, m, StateBackup, at.Add(180468750*time.Nanosecond)) // 3*50 ms + 156*50 ms/256
	if got := m.Status().MasterAdverInterval; got != 50*time.Millisecond {
		t.Errorf("MasterAdverInterval = %v, want 50ms", got)
	}
	// A lower-priority Master's advert with another interval changes nothing in a Master
	// but the reassertion.
	m2, up2 := startMasterV3(t, testConfigV3(100, true, 100*time.Millisecond))
	at2 := up2.Add(30 * time.Millisecond)
	checkActions(t, "lower priority", m2.Receive(at2, peerAdvertV3(t, 50, time.Second, nil)), []Action{
		SendAdvert{ourAdvertV3(100, 100*time.Millisecond)}, Reassert{},
	})
	checkState(t, m2, StateMaster, up2.Add(100*time.Millisecond))
	if got := m2.Status().MasterAdverInterval; got != 100*time.Millisecond {
		t.Errorf("MasterAdverInterval = %v, want our own 100ms", got)
	}
}

func startMasterV3(t *testing.T, cfg MachineConfig) (*Machine, time.Time) {
	t.Helper()
	m, up := startMaster(t, cfg)
	if !up.Equal(t0.Add(MasterDownIntervalV3(cfg.AdvertInterval, cfg.Priority))) {
		t.Fatalf("setup: Master at %v, want Master_Down_Interval", up.Sub(t0))
	}
	return m, up
}

// Version 2 keeps RFC 3768's rule: an advert with another interval is dropped, the timer and
// the interval stay.
func TestBackupDropsOtherIntervalV2(t *testing.T) {
	m := newTestMachine(t, testConfig(100, true))
	m.Start(t0)
	checkActions(t, "advert at 2 s", m.Receive(t0.Add(time.Second), peerAdvert(t, 150, func(a *Advertisement) { a.Interval = 2 * time.Second })), nil)
	checkState(t, m, StateBackup, t0.Add(down100))
	if st := m.Status(); st.Dropped[DropInterval] != 1 || st.MasterAdverInterval != time.Second {
		t.Errorf("Status %+v; want one interval drop, MasterAdverInterval 1s", st)
	}
}

// The version 3 receive checks: each packet is counted under its reason and changes nothing.
func TestDropV3(t *testing.T) {
	const iv = 100 * time.Millisecond
	v4peer := func(t *testing.T, p uint8) Inbound { return peerAdvertV3(t, p, iv, nil) }
	tests := []struct {
		name   string
		packet func(t *testing.T, priority uint8) Inbound
		reason string
	}{
		{"version 2", func(t *testing.T, p uint8) Inbound { return peerAdvert(t, p, nil) }, DropVersion},
		{"IPv6 source", func(t *testing.T, p uint8) Inbound {
			in := v4peer(t, p)
			in.Src = netip.MustParseAddr("fe80::2")
			return in
		}, DropSource},
		{"TTL 64", func(t *testing.T, p uint8) Inbound {
			in := v4peer(t, p)
			in.TTL = 64
			return in
		}, DropTTL},
		{"checksum without the pseudo-header", func(t *testing.T, p uint8) Inbound {
			in := v4peer(t, p)
			in.Payload[6], in.Payload[7] = 0, 0
			c := Checksum(in.Payload)
			in.Payload[6], in.Payload[7] = byte(c>>8), byte(c)
			return in
		}, DropChecksum},
		{"sent to another destination", func(t *testing.T, p uint8) Inbound {
			in := v4peer(t, p)
			in.Dst = netip.MustParseAddr("224.0.0.19")
			return in
		}, DropChecksum},
		{"no destination", func(t *testing.T, p uint8) Inbound {
			in := v4peer(t, p)
			in.Dst = netip.Addr{}
			return in
		}, DropMalformed},
		{"interval 0", func(t *testing.T, p uint8) Inbound {
			in := v4peer(t, p)
			b := in.Payload
			b[4], b[5], b[6], b[7] = 0, 0, 0, 0
			c := PseudoHeader{Src: peerIP, Dst: groupIP}.Checksum(b)
			b[6], b[7] = byte(c>>8), byte(c)
			return in
		}, DropInterval},
		{"other VRID", func(t *testing.T, p uint8) Inbound {
			return peerAdvertV3(t, p, iv, func(a *Advertisement) { a.VRID = 52 })
		}, DropVRID},
		{"other addresses", func(t *testing.T, p uint8) Inbound {
			return peerAdvertV3(t, p, iv, func(a *Advertisement) { a.Addresses = addrs("192.0.2.100") })
		}, DropAddresses},
		{"IPv6 addresses in an IPv4 packet", func(t *testing.T, p uint8) Inbound {
			in := v4peer(t, p)
			b, err := (&Advertisement{Version: 3, Type: 1, VRID: 51, Priority: p, Interval: iv,
				Addresses: addrs("fe80::1", "2001:db8::1")}).Marshal(PseudoHeader{Src: netip.MustParseAddr("fe80::2"), Dst: netip.MustParseAddr("ff02::12")})
			if err != nil {
				t.Fatal(err)
			}
			in.Payload = b
			return in
		}, DropLength},
	}
	for _, tt := range tests {
		for _, state := range []State{StateBackup, StateMaster} {
			for _, p := range []uint8{0, 254} {
				t.Run(fmt.Sprintf("%s/%v/priority %d", tt.name, state, p), func(t *testing.T) {
					m := newTestMachine(t, testConfigV3(100, true, iv))
					m.Start(t0)
					if state == StateMaster {
						m.Tick(m.Deadline())
					}
					before := m.Status()
					deadline := m.Deadline()
					at := m.Deadline().Add(-time.Millisecond)
					checkActions(t, "Receive", m.Receive(at, tt.packet(t, p)), nil)
					after := m.Status()
					if after.Dropped[tt.reason] != 1 || len(after.Dropped) != 1 {
						t.Errorf("Dropped = %v, want {%s: 1}", after.Dropped, tt.reason)
					}
					after.Dropped = before.Dropped
					if diff := cmp.Diff(before, after, cmpAddr); diff != "" {
						t.Errorf("Status changed (-before +after):\n%s", diff)
					}
					checkState(t, m, state, deadline)
				})
			}
		}
	}
}

// Our adverts are byte for byte keepalived's (vrrp_version 3, IPv4 and IPv6), and a Backup
// follows keepalived's captured adverts.
func TestKeepalivedInteropV3(t *testing.T) {
	tests := []struct {
		name     string
		file     string // without .hex; -prio0.hex is the priority-0 advert
		ph       PseudoHeader
		vrid     uint8
		vips     []netip.Addr
		interval time.Duration
		backup   netip.Addr // our Primary as a Backup beside keepalived
	}{
		{"IPv4 1 s", "v3-ipv4-1s", phKeepalived4, 51, keepalivedAddrs, time.Second, netip.MustParseAddr("192.0.2.3")},
		{"IPv4 100 ms", "v3-ipv4-100ms", phKeepalived4, 51, keepalivedAddrs, 100 * time.Millisecond, netip.MustParseAddr("192.0.2.3")},
		{"IPv6 100 ms", "v3-ipv6-100ms", phKeepalived6a, 52, keepalivedAddr6, 100 * time.Millisecond, netip.MustParseAddr("fe80::3")},
		{"IPv6 1 s", "v3-ipv6-1s", phKeepalived6b, 52, keepalivedAddr6, time.Second, netip.MustParseAddr("fe80::3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := MachineConfig{Version: 3, VRID: tt.vrid, Priority: 100, AdvertInterval: tt.interval, Preempt: true,
				Primary: tt.ph.Src, VirtualIPs: tt.vips}
			m, _ := startMaster(t, cfg)
			adv := m.Tick(m.Deadline())[0].(SendAdvert).Advert
			b, err := adv.Marshal(tt.ph)
			if err != nil {
				t.Fatal(err)
			}
			captured := readHexFile(t, "testdata/keepalived/"+tt.file+".hex")
			if diff := cmp.Diff(captured, b); diff != "" {
				t.Errorf("our advert vs keepalived's (-keepalived +ours):\n%s", diff)
			}

			// Another node, Backup at 1 s, hearing keepalived: it adopts keepalived's interval.
			cfg.Primary, cfg.AdvertInterval = tt.backup, time.Second
			m = newTestMachine(t, cfg)
			m.Start(t0)
			ka := Inbound{Src: tt.ph.Src, Dst: tt.ph.Dst, TTL: 255, Payload: captured}
			at := t0.Add(time.Second)
			checkActions(t, "keepalived advert", m.Receive(at, ka), nil)
			checkState(t, m, StateBackup, at.Add(MasterDownIntervalV3(tt.interval, 100)))
			ka.Payload = readHexFile(t, "testdata/keepalived/"+tt.file+"-prio0.hex")
			at = at.Add(time.Second)
			checkActions(t, "keepalived priority 0", m.Receive(at, ka), nil)
			checkState(t, m, StateBackup, at.Add(SkewTimeV3(100, tt.interval)))
			if d := m.Status().Dropped; len(d) != 0 {
				t.Errorf("Dropped = %v, want none", d)
			}
		})
	}
}

func TestNewMachineErrorsV3(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*MachineConfig)
	}{
		{"version 1", func(c *MachineConfig) { c.Version = 1 }},
		{"version 4", func(c *MachineConfig) { c.Version = 4 }},
		{"interval 5 ms", func(c *MachineConfig) { c.AdvertInterval = 5 * time.Millisecond }},
		{"interval 105 ms", func(c *MachineConfig) { c.AdvertInterval = 105 * time.Millisecond }},
		{"interval 40.96 s", func(c *MachineConfig) { c.AdvertInterval = 40960 * time.Millisecond }},
		{"auth simple", func(c *MachineConfig) { c.AuthType, c.AuthData = AuthSimple, secret12 }},
		{"global IPv6 primary", func(c *MachineConfig) {
			c.Primary, c.VirtualIPs = netip.MustParseAddr("2001:db8::1"), addrs("2001:db8::100")
		}},
		{"IPv6 virtual address with IPv4 primary", func(c *MachineConfig) { c.VirtualIPs = addrs("192.0.2.100", "2001:db8::100") }},
		{"IPv4 virtual address with IPv6 primary", func(c *MachineConfig) {
			c.Primary, c.VirtualIPs = netip.MustParseAddr("fe80::1"), addrs("fe80::100", "192.0.2.100")
		}},
		{"IPv6 peer with IPv4 primary", func(c *MachineConfig) { c.Peers = addrs("fe80::2") }},
		{"IPv4 peer with IPv6 primary", func(c *MachineConfig) {
			c.Primary, c.VirtualIPs, c.Peers = netip.MustParseAddr("fe80::1"), addrs("fe80::100"), addrs("192.0.2.2")
		}},
	}
	for _, tt := range tests {
		cfg := testConfigV3(100, true, 100*time.Millisecond)
		tt.modify(&cfg)
		m, err := NewMachine(cfg)
		if !errors.Is(err, ErrMachineConfig) || m != nil {
			t.Errorf("%s: NewMachine = %v, %v; want nil, an error wrapping ErrMachineConfig", tt.name, m, err)
		}
	}
	// Version 2 refuses what only version 3 carries.
	cfg := testConfig(100, true)
	cfg.AdvertInterval = 100 * time.Millisecond
	if _, err := NewMachine(cfg); !errors.Is(err, ErrMachineConfig) {
		t.Errorf("version 2 at 100 ms: NewMachine error %v, want ErrMachineConfig", err)
	}
	// An IPv6 version 3 machine is valid.
	cfg = testConfigV3(100, true, 10*time.Millisecond)
	cfg.Primary, cfg.VirtualIPs, cfg.Peers = netip.MustParseAddr("fe80::1"), addrs("fe80::100", "2001:db8::100"), addrs("fe80::2")
	if _, err := NewMachine(cfg); err != nil {
		t.Errorf("IPv6 version 3: %v", err)
	}
}

// Two version 3 nodes, a Master at 100 ms and a Backup configured at 1 s: the Backup learns
// 100 ms and, when the Master dies, takes over Master_Down_Interval(100 ms) after the last
// advert reached it, not 3.6 s.
func TestPairFailoverV3(t *testing.T) {
	s := &pairSim{t: t, latency: time.Millisecond, ip: [2]netip.Addr{ourIP, peerIP}}
	for i, n := range []struct {
		priority uint8
		interval time.Duration
	}{{200, 100 * time.Millisecond}, {100, time.Second}} {
		cfg := testConfigV3(n.priority, true, n.interval)
		cfg.Primary = s.ip[i]
		s.m[i] = newTestMachine(t, cfg)
		s.start[i] = t0
	}
	s.runUntil(t0.Add(5 * time.Second))
	if s.master() != 0 {
		t.Fatalf("Master = node %d, want node 0\n%s", s.master(), strings.Join(s.trace, "\n"))
	}
	s.checkStable(t0.Add(MasterDownIntervalV3(100*time.Millisecond, 200) + time.Millisecond))
	if got := s.m[1].Status().MasterAdverInterval; got != 100*time.Millisecond {
		t.Fatalf("Backup's MasterAdverInterval = %v, want 100ms", got)
	}
	s.dead[0] = true
	last := s.lastRecv[1]
	s.runUntil(t0.Add(10 * time.Second))
	if got, want := s.becameMaster[1], last.Add(down100v3); !got.Equal(want) {
		t.Errorf("Backup became Master %v after the last advert, want %v\n%s", got.Sub(last), down100v3, strings.Join(s.trace, "\n"))
	}
}

// SetPrimary (issue 8: an interface recreated with another address): the new address is the
// tie-breaker and a Master's MasterIP; a wrong one changes nothing.
func TestSetPrimary(t *testing.T) {
	t.Run("master: the tie-break uses the new address", func(t *testing.T) {
		// With 192.0.2.1 an equal-priority advert from 192.0.2.2 wins (section 6.4.3); with
		// 192.0.2.9 it loses.
		m, up := startMaster(t, testConfig(100, true))
		if err := m.SetPrimary(netip.MustParseAddr("192.0.2.9")); err != nil {
			t.Fatal(err)
		}
		if got := m.Status().MasterIP; got != netip.MustParseAddr("192.0.2.9") {
			t.Errorf("MasterIP = %v, want the new primary", got)
		}
		at := up.Add(100 * time.Millisecond)
		for _, a := range m.Receive(at, peerAdvert(t, 100, nil)) {
			if tr, ok := a.(Transition); ok {
				t.Errorf("equal advert from the lower 192.0.2.2: %+v; want Master to stay", tr)
			}
		}
		if got := m.Status().State; got != StateMaster {
			t.Errorf("state %v, want master", got)
		}
	})
	t.Run("backup: MasterIP stays the Master's", func(t *testing.T) {
		m := newTestMachine(t, testConfig(100, true))
		m.Start(t0)
		m.Receive(t0.Add(time.Second), peerAdvert(t, 150, nil))
		if err := m.SetPrimary(netip.MustParseAddr("192.0.2.9")); err != nil {
			t.Fatal(err)
		}
		if got := m.Status().MasterIP; got != peerIP {
			t.Errorf("MasterIP = %v, want the Master %v", got, peerIP)
		}
	})
	t.Run("refused", func(t *testing.T) {
		uni := testConfig(100, true)
		uni.Peers = []netip.Addr{peerIP}
		v6 := testConfig(100, true)
		v6.Version, v6.Primary, v6.VirtualIPs = 3, netip.MustParseAddr("fe80::1:1"), addrs("fe80::1")
		for _, tc := range []struct {
			name string
			cfg  MachineConfig
			ip   string
			err  string
		}{
			{"IPv6 for an IPv4 group", testConfig(100, true), "fe80::2", "must be an IPv4 address"},
			{"a unicast peer", uni, "192.0.2.2", "is a unicast peer"},
			{"IPv6, not link-local", v6, "2001:db8::1", "link-local"},
			{"IPv4 for an IPv6 group", v6, "192.0.2.9", "must be an IPv6 address"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m, _ := startMaster(t, tc.cfg)
				before := m.Status()
				err := m.SetPrimary(netip.MustParseAddr(tc.ip))
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("SetPrimary(%s) = %v, want an error containing %q", tc.ip, err, tc.err)
				}
				if diff := cmp.Diff(before, m.Status(), cmpAddr); diff != "" {
					t.Errorf("Status changed (-before +after):\n%s", diff)
				}
			})
		}
	})
}

// Receive counts the adverts that pass the section 7.1 checks, and those of them with
// priority 0, in Backup and in Master; a dropped advert counts only in Dropped.
func TestMachineCountsReceived(t *testing.T) {
	ttl64 := func(t *testing.T, p uint8) Inbound {
		in := peerAdvert(t, p, nil)
		in.TTL = 64
		return in
	}
	valid := func(t *testing.T, p uint8) Inbound { return peerAdvert(t, p, nil) }
	tests := []struct {
		name      string
		master    bool
		packets   []func(*testing.T, uint8) Inbound
		prios     []uint8
		all, zero uint64
		dropped   uint64
	}{
		{"backup, one valid", false, []func(*testing.T, uint8) Inbound{valid}, []uint8{200}, 1, 0, 0},
		{"backup, valid then resignation", false, []func(*testing.T, uint8) Inbound{valid, valid}, []uint8{200, 0}, 2, 1, 0},
		{"backup, a bad TTL", false, []func(*testing.T, uint8) Inbound{ttl64, valid}, []uint8{200, 200}, 1, 0, 1},
		{"master, lower priority and a resignation", true, []func(*testing.T, uint8) Inbound{valid, valid}, []uint8{50, 0}, 2, 1, 0},
		{"master, a bad TTL resignation", true, []func(*testing.T, uint8) Inbound{ttl64}, []uint8{0}, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMachine(t, testConfig(100, false))
			m.Start(t0)
			if tt.master {
				m.Tick(m.Deadline())
			}
			at := t0.Add(time.Millisecond)
			for i, pkt := range tt.packets {
				m.Receive(at, pkt(t, tt.prios[i]))
			}
			st := m.Status()
			all, zero := m.ReceivedCounts()
			if st.Received != tt.all || st.ReceivedPriorityZero != tt.zero || all != tt.all || zero != tt.zero {
				t.Errorf("Received %d (%d), priority 0 %d (%d); want %d, %d", st.Received, all, st.ReceivedPriorityZero, zero, tt.all, tt.zero)
			}
			var dropped uint64
			for _, n := range st.Dropped {
				dropped += n
			}
			if dropped != tt.dropped {
				t.Errorf("Dropped = %v, want %d in all", st.Dropped, tt.dropped)
			}
		})
	}
}
