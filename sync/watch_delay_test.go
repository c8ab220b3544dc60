package sync

import (
	"testing"
	"time"
)

func TestWatchDelay(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	for _, tc := range []struct {
		since time.Duration // now - first
		want  time.Duration
	}{
		{0, 150 * ms},        // a first change: the quiet time
		{100 * ms, 150 * ms}, // changes keep coming: quiet after the last one...
		{450 * ms, 150 * ms},
		{500 * ms, 100 * ms}, // ...but the run starts by first + 600 ms
		{600 * ms, 0},
		{900 * ms, 0}, // a run already due
	} {
		if got := watchDelay(t0, t0.Add(tc.since)); got != tc.want {
			t.Errorf("watchDelay at first+%v = %v, want %v", tc.since, got, tc.want)
		}
	}
}
