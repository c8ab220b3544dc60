package appliance

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redundantd/redundantd/vrrp"
)

var failT0 = time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)

// lostMaster is the view of a Master whose link closed at failT0+10s, as a dead daemon closes it.
func lostMaster() PeerView {
	return PeerView{Connected: false, NodeID: "pbx-a", Role: PeerRoleMaster, BackupMode: PeerModeActive,
		HoldsAddresses: true, Since: failT0.Add(10 * time.Second), Ended: PeerEndClosed, LastError: "connection closed"}
}

// TestCrashTakeover is the crash rule's table: how the link ended, what the peer last was,
// this node's role and mode, and when the last advert arrived against the close.
func TestCrashTakeover(t *testing.T) {
	closedAt := failT0.Add(10 * time.Second)
	tests := []struct {
		name   string
		edit   func(*failoverInput)
		want   bool
		reason string // a part of the reason given
	}{
		{"dead daemon: kernel closed the link, last advert before", func(*failoverInput) {}, true, "closed without a goodbye"},
		{"never heard an advert (advert path cut since start)", func(in *failoverInput) { in.LastAdvert = time.Time{} }, true, "daemon died"},
		{"link still up", func(in *failoverInput) { in.Peer.Connected = true }, false, "link is up"},
		{"graceful stop: bye before the close", func(in *failoverInput) { in.Peer.Ended = PeerEndBye }, false, "ended bye"},
		{"hung daemon or lost host: silent", func(in *failoverInput) { in.Peer.Ended = PeerEndSilent }, false, "ended silent"},
		{"cut inside a frame, TLS error", func(in *failoverInput) { in.Peer.Ended = PeerEndError }, false, "ended error"},
		{"ended unknown (older view)", func(in *failoverInput) { in.Peer.Ended = "" }, false, "ended unknown"},
		{"peer was a Backup", func(in *failoverInput) { in.Peer.Role = PeerRoleBackup }, false, "not Master"},
		{"peer was initializing", func(in *failoverInput) { in.Peer.Role = "initialize" }, false, "not Master"},
		{"this node is Master", func(in *failoverInput) { in.State = vrrp.StateMaster }, false, "not Backup"},
		{"this node is out of the protocol", func(in *failoverInput) { in.State = vrrp.StateInitialize }, false, "not Backup"},
		{"Passive Backup never takes over", func(in *failoverInput) { in.Passive = true }, false, "Passive"},
		{"an advert after the close: the Master (or a restarted one) is alive", func(in *failoverInput) { in.LastAdvert = closedAt.Add(time.Millisecond) }, false, "after the peer link closed"},
		{"an advert at the very moment of the close", func(in *failoverInput) { in.LastAdvert = closedAt }, false, "after the peer link closed"},
		{"the last advert long before: adverts were already lost", func(in *failoverInput) { in.LastAdvert = failT0 }, true, "daemon died"},
	}
	for _, tc := range tests {
		in := failoverInput{Peer: lostMaster(), State: vrrp.StateBackup, LastAdvert: closedAt.Add(-300 * time.Millisecond)}
		tc.edit(&in)
		got, why := crashTakeover(in)
		if got != tc.want || !strings.Contains(why, tc.reason) {
			t.Errorf("%s: crashTakeover = %t %q, want %t with %q", tc.name, got, why, tc.want, tc.reason)
		}
	}
}

// TestAdvertHold: the engine is held only while the link is up and the peer says it is
// Master holding the virtual IPs.
func TestAdvertHold(t *testing.T) {
	up := PeerView{Connected: true, Role: PeerRoleMaster, HoldsAddresses: true}
	tests := []struct {
		name string
		edit func(*PeerView)
		want bool
	}{
		{"Master alive on the link, addresses held", func(*PeerView) {}, true},
		{"link down", func(v *PeerView) { v.Connected = false }, false},
		{"peer is Backup", func(v *PeerView) { v.Role = PeerRoleBackup }, false},
		{"Master without its addresses (or an older peer that does not say)", func(v *PeerView) { v.HoldsAddresses = false }, false},
	}
	for _, tc := range tests {
		v := up
		tc.edit(&v)
		for _, st := range []vrrp.State{vrrp.StateBackup, vrrp.StateMaster} {
			if got := advertHold(failoverInput{Peer: v, State: st}); got != tc.want {
				t.Errorf("%s (%s): advertHold = %t, want %t", tc.name, st, got, tc.want)
			}
		}
	}
}

// TestFailoverWatch: the crash rule is decided once per loss, the hold only on changes.
func TestFailoverWatch(t *testing.T) {
	var w failoverWatch
	backup := func(v PeerView) failoverInput {
		return failoverInput{Peer: v, State: vrrp.StateBackup, LastAdvert: failT0.Add(9800 * time.Millisecond)}
	}
	master := PeerView{Connected: true, NodeID: "pbx-a", Role: PeerRoleMaster, HoldsAddresses: true, Since: failT0}
	steps := []struct {
		name string
		in   failoverInput
		want failoverStep
	}{
		{"link up, Master holding: hold", backup(master), failoverStep{Hold: true, HoldChange: true}},
		{"next status: nothing new", backup(master), failoverStep{Hold: true}},
		{"the Master's daemon dies", backup(lostMaster()), failoverStep{TakeOver: true, HoldChange: true}},
		{"a dial error on the same loss decides nothing", backup(func() PeerView { v := lostMaster(); v.LastError = "dial: refused"; return v }()), failoverStep{}},
		{"the restarted peer connects as Backup", backup(PeerView{Connected: true, Role: PeerRoleBackup, Since: failT0.Add(11 * time.Second)}), failoverStep{}},
		{"it stops with a bye", backup(PeerView{Role: PeerRoleBackup, Since: failT0.Add(20 * time.Second), Ended: PeerEndBye}), failoverStep{}},
	}
	for _, st := range steps {
		got := w.step(st.in)
		got.Why = ""
		if got != st.want {
			t.Errorf("%s: step = %+v, want %+v", st.name, got, st.want)
		}
	}
}

// TestPeerEndOf: only a clean end of stream or a reset reads as a dead daemon.
func TestPeerEndOf(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		err  error
		bye  string
		want string
	}{
		{io.EOF, "", PeerEndClosed},
		{fmt.Errorf("wrapped: %w", io.EOF), "", PeerEndClosed},
		{reset, "", PeerEndClosed},
		{io.EOF, "shutting down", PeerEndBye},
		{reset, "replaced by a new connection", PeerEndBye},
		{io.ErrUnexpectedEOF, "", PeerEndError},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, "", PeerEndSilent},
		{net.ErrClosed, "", PeerEndError},
		{ErrPeerMessage, "", PeerEndError},
		{errors.New("tls: bad record MAC"), "", PeerEndError},
	}
	for _, tc := range tests {
		if got := peerEndOf(tc.err, tc.bye); got != tc.want {
			t.Errorf("peerEndOf(%v, %q) = %q, want %q", tc.err, tc.bye, got, tc.want)
		}
	}
}

// TestPeerEndOnTheWire: a frame cut short by the end of the stream is not a clean close,
// and the bye a stopping link sends reaches the peer before its end of stream.
func TestPeerEndOnTheWire(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		_ = writePeerMsg(a, peerMsg{Type: "bye", Reason: "shutting down"})
		a.Write([]byte{0, 0, 0, 10, '{'}) // a header and one byte of a 10-byte frame
		a.Close()
	}()
	m, err := readPeerMsg(b)
	if err != nil || m.Type != "bye" || m.Reason != "shutting down" {
		t.Fatalf("first frame = %+v, %v; want the bye", m, err)
	}
	if _, err := readPeerMsg(b); !errors.Is(err, io.ErrUnexpectedEOF) || peerEndOf(err, "") != PeerEndError {
		t.Errorf("a frame cut short: %v (%s), want io.ErrUnexpectedEOF and %s", err, peerEndOf(err, ""), PeerEndError)
	}
}

// TestPeerLinkEnded: the view says how the connection ended: a peer that stops says bye, a
// connection whose socket is closed under it (a killed daemon: FIN, or RST with data unread)
// is closed. (Silent: TestPeerLinkSilentPeer; a frame cut short: TestPeerEndOnTheWire.)
func TestPeerLinkEnded(t *testing.T) {
	a, b := peerPair(t)
	a.waitEvent("up passive", 1)
	b.stop()
	a.waitFor("the loss", func() bool { return !a.link.Status().Connected })
	if v := a.link.Status(); v.Ended != PeerEndBye || v.LastError != "closed by the peer: shutting down" {
		t.Errorf("a stopped peer: ended %q, last_error %q; want bye", v.Ended, v.LastError)
	}

	hello := &peerInfo{NodeID: "b", Version: "1.4.0", Settings: peerTestSettings,
		SettingsFingerprint: peerTestSettings.Fingerprint(), PeerStatus: peerBackupStatus}
	for _, tc := range []struct {
		name  string
		end   func(c *tls.Conn)
		want  string
		count int
	}{
		{"the socket closed under the TLS session (the kernel of a killed daemon)", func(c *tls.Conn) { c.NetConn().Close() }, PeerEndClosed, 2},
		{"a bye, then the close", func(c *tls.Conn) {
			c.Write(peerFrame(t, peerMsg{Type: "bye", Reason: strings.Repeat("x", 300)}))
			c.NetConn().Close()
		}, PeerEndBye, 3},
	} {
		c := peerRaw(t, a, b.dir, peerFrame(t, peerMsg{Type: "hello", Info: hello}))
		a.waitEvent("up passive", tc.count)
		tc.end(c)
		a.waitFor(tc.name, func() bool { return !a.link.Status().Connected })
		v := a.link.Status()
		if v.Ended != tc.want {
			t.Errorf("%s: ended %q (last_error %q), want %q", tc.name, v.Ended, v.LastError, tc.want)
		}
		if tc.want == PeerEndBye && len(v.LastError) > len("closed by the peer: ")+peerByeReasonMax+3 {
			t.Errorf("%s: the bye's reason is kept whole (%d bytes)", tc.name, len(v.LastError))
		}
	}
}
