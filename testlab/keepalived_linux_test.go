package testlab

import (
	"context"
	"testing"
	"time"
)

// TestKeepalivedPairBaseline checks the lab's harness against the reference implementation:
// two keepalived instances elect one Master, and MeasureFailover times a SIGTERM handover
// against RFC 3768's Skew_Time.
func TestKeepalivedPairBaseline(t *testing.T) {
	t.Parallel()
	RequireKeepalived(t)
	l := NewT(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	vip := l.DefaultVIP()
	tl, err := l.Record(ctx, vip.Addr())
	if err != nil {
		t.Fatal(err)
	}
	a := StartRouterT(t, l.Node(1), Keepalived, VRRPConfig{})
	if err := a.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	b := StartRouterT(t, l.Node(2), Keepalived, VRRPConfig{})
	if err := b.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.WaitVIP(ctx, a.Node, true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	f, err := MeasureFailover(ctx, tl, a, b, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keepalived planned failover: %v (theory %v)", f.Elapsed(), f.Theory())
	if f.Elapsed() < f.Theory()-50*time.Millisecond {
		t.Errorf("takeover %v after the priority-0 advert, sooner than Skew_Time %v: the measurement is wrong", f.Elapsed(), f.Theory())
	}
	if err := b.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if h, err := l.Holders(vip.Addr()); err != nil || len(h) != 1 || h[0] != b.Node {
		t.Errorf("VIP holders after the handover = %v, %v; want node2 only", h, err)
	}
}
