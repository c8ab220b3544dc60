package testlab

import (
	"context"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/fossim"
)

// waitMode polls the simulated berofos until its relay mode is want.
func waitMode(ctx context.Context, b *Berofos, want int) (time.Time, error) {
	for {
		if b.Sim.Mode() == want {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestRedundantdSwitchesBerofos runs a redundantd pair with a simulated berofos on the lab
// bridge: node1 is wired to port B (mode 1 gives it the lines), node2 to port D (mode 0). The
// lines must follow the Master through a SIGTERM handover and a SIGKILL failover.
func TestRedundantdSwitchesBerofos(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fos, err := l.StartBerofos(ctx, "fos1", fossim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := l.Record(ctx, l.DefaultVIP().Addr())
	if err != nil {
		t.Fatal(err)
	}
	cfgs := []VRRPConfig{{Extra: fos.TOML(1)}, {Extra: fos.TOML(0)}}
	n1 := StartRouterT(t, l.Node(1), Redundantd, cfgs[0])
	if err := n1.WaitState(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	n2 := StartRouterT(t, l.Node(2), Redundantd, cfgs[1])
	if err := n2.WaitState(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := waitMode(wctx, fos, 1); err != nil {
		t.Fatalf("lines not switched to node1 (mode %d), the Master: %v", fos.Sim.Mode(), err)
	}
	wcancel()

	steps := []struct {
		planned bool
		from    *Router
		to      *Router
		mode    int
	}{
		{true, n1, n2, 0},
		{false, n2, n1, 1},
	}
	for _, s := range steps {
		// The node stopped in the previous step returns as Backup.
		if exited, _ := s.to.Proc().Exited(); exited {
			if err := s.to.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.to.WaitState(ctx, "backup"); err != nil {
			t.Fatal(err)
		}
		if _, err := tl.WaitAdvert(ctx, time.Now(), "an advert of the Master", From(s.from.Node, 51)); err != nil {
			t.Fatal(err)
		}
		before := len(fos.Sim.Sets())
		f, err := MeasureFailover(ctx, tl, s.from, s.to, s.planned)
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		at, err := waitMode(wctx, fos, s.mode)
		wcancel()
		if err != nil {
			t.Fatalf("lines not switched to %s after the takeover (mode %d): %v", s.to.Node.Name, fos.Sim.Mode(), err)
		}
		t.Logf("lines on %s %v after its VIP (planned=%t)", s.to.Node.Name, at.Sub(f.VIP.At).Round(time.Millisecond), s.planned)
		sets := fos.Sim.Sets()[before:]
		if len(sets) == 0 {
			t.Errorf("the relay mode changed without a set request")
		}
		for _, r := range sets {
			if r.At.Before(f.VIP.At.Add(-50 * time.Millisecond)) {
				t.Errorf("set %q at %s, before %s took over", r.Query, r.At.Format("15:04:05.000"), s.to.Node.Name)
			}
		}
	}
}
