package testlab

import (
	"context"
	"testing"
	"time"
)

// recordedLab builds a two-node lab for the test, a context bounded by timeout, and a
// Timeline recording the adverts, ARPs and default VIP of the lab; all end with the test.
func recordedLab(t *testing.T, timeout time.Duration) (*Lab, context.Context, *Timeline) {
	t.Helper()
	l := NewT(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	tl, err := l.Record(ctx, l.DefaultVIP().Addr())
	if err != nil {
		t.Fatal(err)
	}
	return l, ctx, tl
}
