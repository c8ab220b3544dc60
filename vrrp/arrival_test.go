package vrrp

import (
	"strings"
	"testing"
	"time"
)

func TestArrival(t *testing.T) {
	now := time.Now() // with a monotonic reading, as the reader's is
	wall := now.Round(0)
	for _, tc := range []struct {
		name  string
		stamp time.Time
		want  time.Duration // arrival - now
	}{
		{"no stamp", time.Time{}, 0},
		{"stamped now", wall, 0},
		{"3 ms in the socket", wall.Add(-3 * time.Millisecond), -3 * time.Millisecond},
		{"1 ns in the socket", wall.Add(-1), -1},
		{"at the limit", wall.Add(-maxStampAge), -maxStampAge},
		{"wall clock stepped back: stamp ahead", wall.Add(2 * time.Millisecond), 0},
		{"wall clock stepped forward: stamp too old", wall.Add(-maxStampAge - 1), 0},
		{"an hour old", wall.Add(-time.Hour), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := arrival(now, tc.stamp)
			if d := got.Sub(now); d != tc.want {
				t.Errorf("arrival - now = %v, want %v", d, tc.want)
			}
			// The result stays on the monotonic clock: a later wall-clock step cannot move it.
			if !strings.Contains(got.String(), " m=") { // time.Time.String shows a monotonic reading
				t.Errorf("arrival %v lost the monotonic reading", got)
			}
		})
	}
}
