package vrrp

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestRouterHold: a held Router reports the missed adverts through OnHeld (the first time and
// every Master_Down_Interval after) instead of taking the addresses, and takes them at once
// when released.
func TestRouterHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := rtConfig()
		var mu sync.Mutex
		var held []Held
		cfg.OnHeld = func(h Held) {
			mu.Lock()
			held = append(held, h)
			mu.Unlock()
		}
		g := newRig(t, cfg)
		g.r.SetHold(true) // before Run: applied from the start
		g.start()
		g.expect("0s event initialize->backup")
		rtSleep(time.Second)
		g.deliver(rtAdvert(t, rtPeer, 200, rtVIP))
		rtSleep(2 * rtDown100)
		g.expect() // no address, no advert: held
		mu.Lock()
		defer mu.Unlock()
		if len(held) != 2 || !held[0].At.Equal(held[0].Since) || !held[1].Since.Equal(held[0].Since) ||
			held[1].At.Sub(held[0].At) != rtDown100 {
			t.Fatalf("OnHeld calls %+v, want two of one episode, Master_Down_Interval apart", held)
		}
		if s := g.r.Status(); s.State != StateBackup || !s.Held || s.LastAdvert.IsZero() {
			t.Errorf("status %+v, want a held Backup with its last advert", s)
		}
		g.r.SetHold(false)
		synctest.Wait()
		g.expect(
			"8.21875s add [192.0.2.100/24]",
			"8.21875s advert prio=100",
			"8.21875s garp [192.0.2.100]",
			"8.21875s event backup->master",
		)
		g.mu.Lock()
		e := g.events[len(g.events)-1]
		g.mu.Unlock()
		if e.Cause != CauseMasterDown {
			t.Errorf("release: cause %v, want %v", e.Cause, CauseMasterDown)
		}
		g.stop()
		g.take()
	})
}
