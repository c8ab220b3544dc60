package poll

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestContextReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	err := Context(context.Background(), time.Millisecond, func() bool { return n.Add(1) == 3 })
	if err != nil || n.Load() != 3 {
		t.Fatalf("Context = %v after %d evaluations, want nil after 3", err, n.Load())
	}
}

func TestContextEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Context(ctx, time.Millisecond, func() bool { return false })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Context on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestUntilWaitsForTheCondition(t *testing.T) {
	var n atomic.Int32
	Until(t, time.Minute, "the third evaluation", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 {
		t.Errorf("%d evaluations, want 3", n.Load())
	}
}
