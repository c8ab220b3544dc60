package main

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestTrimDue(t *testing.T) {
	for _, tt := range []struct {
		retained, base uint64
		want           bool
	}{
		{0, 0, false},
		{trimGrowth - 1, 0, false},
		{trimGrowth, 0, true}, // start-up's garbage
		{3 << 20, 0, true},
		{1<<20 + trimGrowth - 1, 1 << 20, false},
		{1<<20 + trimGrowth, 1 << 20, true},
		{1 << 20, 2 << 20, false},                // shrank
		{100<<20 + 24<<20, 100 << 20, false},     // a big heap trims after a quarter more
		{100<<20 + 25<<20, 100 << 20, true},      //
		{100<<20 + trimGrowth, 100 << 20, false}, // not after 512 KiB
	} {
		if got := trimDue(tt.retained, tt.base); got != tt.want {
			t.Errorf("trimDue(%d, %d) = %v, want %v", tt.retained, tt.base, got, tt.want)
		}
	}
}

// A trimmer trims when the heap grew by trimGrowth since the last trim, measured from what
// the trim left, and not otherwise.
func TestTrimmer(t *testing.T) {
	var heap uint64
	released := 0
	tr := &trimmer{read: func() uint64 { return heap }, log: slog.New(slog.DiscardHandler),
		release: func() { released++; heap = 300 << 10 }} // what a collection leaves
	for _, st := range []struct {
		heap uint64
		trim bool
	}{
		{100 << 10, false},                // start-up left little
		{1200 << 10, true},                // start-up's garbage: trimmed to 300 KiB
		{300<<10 + trimGrowth - 1, false}, // idle growth below the threshold
		{300<<10 + trimGrowth, true},      // and at it
		{300 << 10, false},
	} {
		heap = st.heap
		n := released
		if got := tr.check(); got != st.trim || released-n != map[bool]int{false: 0, true: 1}[st.trim] {
			t.Fatalf("heap %d: check %v with %d releases, want %v", st.heap, got, released-n, st.trim)
		}
	}
}

// heapRetained counts what the heap takes from the system: after a trim, a megabyte of
// allocations is a megabyte more, and the next trim gives it back.
func TestHeapRetainedFollowsTheHeap(t *testing.T) {
	h := newHeapRetained()
	debug.FreeOSMemory()
	before := h.read()
	var keep [][]byte
	for range 64 {
		keep = append(keep, make([]byte, 16<<10))
	}
	grown := h.read()
	if grown < before+1<<20 {
		t.Errorf("retained %d after 1 MiB of allocations, was %d", grown, before)
	}
	runtime.KeepAlive(keep)
	keep = nil
	debug.FreeOSMemory()
	if after := h.read(); after >= grown-1<<20+64<<10 {
		t.Errorf("retained %d after the trim, %d before it: the megabyte was not returned", after, grown)
	}
}
