// Package poll is the one way tests, labs and benchmarks wait for a condition that sends no
// event (a file on a replica, a VRRP state in another namespace, a counter in a status):
// cond is evaluated every step until it holds. Waiting is never a measurement: how long it
// took is returned for logs, never asserted.
package poll

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Step is how often Until evaluates its condition.
const Step = 5 * time.Millisecond

// Context evaluates cond every step until it holds (nil) or ctx is done (ctx's error,
// wrapped).
func Context(ctx context.Context, step time.Duration, cond func() bool) error {
	if cond() {
		return nil
	}
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if cond() {
				return nil
			}
			return fmt.Errorf("poll: %w", ctx.Err())
		case <-t.C:
			if cond() {
				return nil
			}
		}
	}
}

// Until evaluates cond every Step until it holds and returns how long that took; when
// within passes first, t fails with what was awaited.
func Until(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := Context(ctx, Step, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
	return time.Since(start)
}
