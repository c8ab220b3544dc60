package testlab

import (
	"context"
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/redundantd/redundantd/testlab/sockmsg"
)

// Frames of TestSniffStampsFramesWithKernelTime, told apart by their VRID.
const (
	vridHold  = 1  // the reader stops on it until the test releases it
	vridProbe = 2  // warm-up: sent while the reader is held
	vridA     = 10 // the measured pair, sent 100 ms apart while the reader is held
	vridB     = 11
)

// sentFrame is a frame and the window of the send call that put it on the wire.
type sentFrame struct {
	vrid          uint8
	before, after time.Time
}

// sendAdvertVRID sends vrrpPayload from n with the VRID replaced (the sniffer does not check
// the checksum) and returns the window of the send.
func sendAdvertVRID(t *testing.T, n *Node, vrid uint8) sentFrame {
	t.Helper()
	p := append([]byte(nil), vrrpPayload...)
	p[1] = vrid
	var s sentFrame
	s.vrid = vrid
	err := sendVRRP(n, func(pc *ipv4.PacketConn, dst *net.IPAddr) error {
		s.before = time.Now()
		_, err := pc.WriteTo(p, nil, dst)
		s.after = time.Now()
		return err
	})
	if err != nil {
		t.Fatalf("send advert with VRID %d from %s: %v", vrid, n.Name, err)
	}
	return s
}

// TestSniffStampsFramesWithKernelTime proves that a frame is stamped when the kernel received
// it, not when a late reader got to it: the reader is held on one frame while two more are
// sent 100 ms apart and then left 300 ms longer, as a loaded machine does. Each stamp must lie
// within its send call (veth delivers to the bridge, and the kernel stamps the frame, inside
// the sender's syscall), so the pair keeps its spacing and both precede the reader's release.
func TestSniffStampsFramesWithKernelTime(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	node := l.Node(1)
	held := make(chan struct{})
	release := make(chan struct{})
	frames, err := sniff(ctx, l, "", unix.ETH_P_IP, 16, func(b []byte, at time.Time) (Advert, bool) {
		a, ok := parseVRRPFrame(b)
		if !ok || a.Src != node.Addr {
			return a, false
		}
		a.At = at
		if a.VRID == vridHold {
			select {
			case held <- struct{}{}:
			case <-ctx.Done():
				return a, false
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return a, true
	})
	if err != nil {
		t.Fatal(err)
	}
	// next returns the next frame delivered, which must carry vrid.
	next := func(vrid uint8) Advert {
		t.Helper()
		select {
		case a, ok := <-frames:
			if !ok {
				t.Fatalf("sniffer closed before the frame with VRID %d", vrid)
			}
			if a.VRID != vrid {
				t.Fatalf("sniffed the frame with VRID %d, want %d", a.VRID, vrid)
			}
			return a
		case <-ctx.Done():
			t.Fatalf("no frame with VRID %d: %v", vrid, ctx.Err())
		}
		return Advert{}
	}
	// holdReader sends the hold frame and returns once the reader is stuck on it.
	holdReader := func() {
		t.Helper()
		sendAdvertVRID(t, node, vridHold)
		select {
		case <-held:
		case <-ctx.Done():
			t.Fatalf("the reader never got the hold frame: %v", ctx.Err())
		}
	}

	// Warm-up. The first socket of the system to ask for timestamps switches the kernel's
	// receive stamping on through deferred work; until it has run, frames are stamped when
	// read. Probe until a frame sent while the reader is held is stamped before the release:
	// from then on the kernel stamps every frame while the sniffer's socket is open. Were the
	// stamps the reader's, this would never happen and the context would end the test.
	for round := 1; ; round++ {
		holdReader()
		probe := sendAdvertVRID(t, node, vridProbe)
		releasedAt := time.Now()
		release <- struct{}{}
		next(vridHold)
		p := next(vridProbe)
		if p.At.Before(releasedAt) {
			t.Logf("kernel stamps from warm-up round %d (probe stamped %v after its send began)", round, p.At.Sub(probe.before))
			break
		}
	}

	holdReader()
	a := sendAdvertVRID(t, node, vridA)
	time.Sleep(100 * time.Millisecond) // the spacing to be measured
	b := sendAdvertVRID(t, node, vridB)
	time.Sleep(300 * time.Millisecond) // the reader is late, as under load
	releasedAt := time.Now()
	release <- struct{}{}
	next(vridHold)
	got := map[uint8]Advert{vridA: next(vridA), vridB: next(vridB)}
	for _, s := range []sentFrame{a, b} {
		at := got[s.vrid].At
		if at.Before(s.before) || at.After(s.after) {
			t.Errorf("frame with VRID %d stamped %v after its send began, want within the send call (%v); read %v after the stamp",
				s.vrid, at.Sub(s.before), s.after.Sub(s.before), releasedAt.Sub(at))
		}
	}
	gap := got[vridB].At.Sub(got[vridA].At)
	if lo, hi := b.before.Sub(a.after), b.after.Sub(a.before); gap < lo || gap > hi {
		t.Errorf("stamps %v apart, want between %v and %v (the sends' spacing)", gap, lo, hi)
	}
	t.Logf("stamps %v apart; frames read %v after they were stamped", gap, releasedAt.Sub(got[vridB].At))
}

func TestKernelStamp(t *testing.T) {
	want := time.Date(2026, 12, 1, 21, 30, 0, 123456789, time.UTC)
	ts := unix.NsecToTimespec(want.UnixNano())
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts))
	stamp := sockmsg.Build(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, raw)
	other := sockmsg.Build(unix.SOL_PACKET, unix.PACKET_AUXDATA, make([]byte, 20))
	tests := []struct {
		name string
		oob  []byte
		ok   bool
	}{
		{"stamp alone", stamp, true},
		{"stamp after another message", append(append([]byte(nil), other...), stamp...), true},
		{"no control data", nil, false},
		{"another message only", other, false},
		{"stamp too short", sockmsg.Build(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, raw[:8]), false},
		{"truncated header", stamp[:4], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := kernelStamp(tt.oob)
			if ok != tt.ok {
				t.Fatalf("kernelStamp ok = %v, want %v", ok, tt.ok)
			}
			if ok && !got.Equal(want) {
				t.Errorf("kernelStamp = %v, want %v", got, want)
			}
		})
	}
}
