package testlab

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/testlab/poll"
)

// TestBerofosDownDuringFailover: the berofos stops answering, then the Master is lost. The
// Backup takes over in the RFC's time and starts the PBX without waiting for the device;
// the lines stay where they were until the device answers again, then follow the new Master.
func TestBerofosDownDuringFailover(t *testing.T) {
	t.Parallel()
	requireUnshare(t)
	bl := newBerofosLab(t, 60*time.Second)
	ctx, tl, fos, a, b := bl.ctx, bl.tl, bl.fos, bl.a, bl.b
	if _, err := tl.WaitAdvert(ctx, time.Now(), "an advert of the Master", From(a.Router.Node, 51)); err != nil {
		t.Fatal(err)
	}

	fos.Sim.SetDown(true)
	f, err := MeasureFailover(ctx, tl, a.Router, b.Router, false)
	if err != nil {
		t.Fatal(err)
	}
	// The takeover does not wait for the device: the address and the PBX move while it is
	// still down (the delay is logged, not asserted: that is for the benchmarks).
	if err := poll.Context(ctx, 20*time.Millisecond, b.Running); err != nil {
		t.Fatalf("the PBX did not start on the new Master while the berofos is down: %v", err)
	}
	started := time.Now()
	// The new Master finds the device down and says so while it is (the device stays down
	// until then: bringing it back within the first attempt would make the event a race).
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { return hasEvent(lastEvents(t, b.Router.Node), "unreachable") }); err != nil {
		t.Errorf("no berofos unreachable event on the new Master while the device is down: %v\n%s", err, strings.Join(lastEvents(t, b.Router.Node), "\n"))
	}
	if m := fos.Sim.Mode(); m != 1 {
		t.Errorf("relay mode %d while the device was down, want 1 unchanged", m)
	}

	fos.Sim.SetDown(false)
	back := time.Now()
	at, err := waitMode(ctx, fos, 0)
	if err != nil {
		t.Fatalf("the lines did not follow the new Master once the device was back: mode %d: %v", fos.Sim.Mode(), err)
	}
	t.Logf("VIP on node2 %v after the last advert (RFC %v), PBX started %v after the VIP, lines on node2 %v after the device came back",
		f.Elapsed().Round(time.Millisecond), f.Theory(), started.Sub(f.VIP.At).Round(time.Millisecond), at.Sub(back).Round(time.Millisecond))
	if err := poll.Context(ctx, 50*time.Millisecond, func() bool { return hasEvent(lastEvents(t, b.Router.Node), "confirmed") }); err != nil {
		t.Errorf("no berofos confirmed event on the new Master: %v\n%s", err, strings.Join(lastEvents(t, b.Router.Node), "\n"))
	}
}

// TestServiceStartFails: the Backup's second service cannot start. When the Master is lost
// the Backup takes over anyway, starts the PBX, reports the failed start and is unhealthy;
// it stays Master while no healthy Active Backup is there (any PBX beats none). The old
// Master returns as a healthy Active Backup: the unhealthy Master gives it the role.
func TestServiceStartFails(t *testing.T) {
	t.Parallel()
	requireUnshare(t)
	l, ctx, _ := recordedLab(t, 60*time.Second)
	bad := "[[service]]\nname = \"ivr\"\nstart = [\"sh\", \"-c\", \"echo no licence for the IVR >&2; exit 3\"]\nstop = [\"true\"]\n"
	ps, err := StartPBXPair(ctx, l, [2]VRRPConfig{{Priority: 150}, {Priority: 100}}, [2]string{"", bad})
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0], ps[1]
	if err := a.Router.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Router.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, b.Running); err != nil {
		t.Fatalf("the PBX did not start beside the failed service: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := poll.Context(wctx, 50*time.Millisecond, func() bool {
		st, err := b.Status(ctx)
		if err != nil {
			return false
		}
		for _, s := range st.Services {
			if s.Name == "ivr" && s.State == appliance.ServiceFailed {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("the failed service is not failed in the status: %v", err)
	}
	evs := lastEvents(t, b.Router.Node)
	if !hasEvent(evs, "start-failed") {
		t.Errorf("no start-failed event:\n%s", strings.Join(evs, "\n"))
	}
	if st, err := b.Status(ctx); err != nil || st.State != "master" {
		t.Errorf("the unhealthy Master without a Backup gave the role up: %+v, %v", st, err)
	}

	// The old Master comes back, Active and healthy: the role goes to it.
	if err := a.Router.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Router.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	if err := b.Router.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	if err := poll.Context(ctx, 20*time.Millisecond, func() bool { return a.Running() && !b.Running() }); err != nil {
		t.Fatalf("the PBX did not move to the healthy node: %v", err)
	}
	if evs := lastEvents(t, b.Router.Node); !hasEvent(evs, "resigned") {
		t.Errorf("no resigned event on the unhealthy node:\n%s", strings.Join(evs, "\n"))
	}
}
