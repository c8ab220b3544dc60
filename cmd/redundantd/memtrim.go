package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Returning the heap's free memory to the system.
//
// The Go runtime is tuned for servers that allocate all the time: it collects only when the
// heap reaches its goal, at least 4 MB, and keeps the freed pages for reuse. An appliance
// daemon idles for months; it allocates a megabyte at start-up (the configuration, the TLS
// identity, the first API calls) and about 1.5 KB a second after that (link checks, adverts).
// Left alone its heap climbs to the 4 MB goal over the first hour and stays there, which is
// a third of its memory and more than keepalived's whole heap (docs/benchmarks.md,
// "resources"). So the daemon looks at its heap every trimEvery, and when it has grown by
// trimGrowth (or a quarter, when larger) since the last time, it collects and returns the
// free pages to the system (debug.FreeOSMemory). A trim of the daemon's heap takes a few
// milliseconds of CPU (3.5 ms measured with a megabyte live in small objects); its
// stop-the-world phases are tens of microseconds, far below the VRRP timers. Idle, that is
// one every five minutes or so, and at most one per trimEvery while a sync run or a flood
// of API calls allocates. The first check, trimFirst after
// start, returns start-up's garbage.
const (
	trimFirst  = 10 * time.Second // start-up is over: the node has its role
	trimEvery  = 30 * time.Second
	trimGrowth = 512 << 10
)

// trimDue reports whether the heap, retained bytes now, has grown enough past base, what it
// held after the last trim, to trim again. The first check has base 0: start-up's garbage.
func trimDue(retained, base uint64) bool {
	return retained > base && retained-base >= max(trimGrowth, base/4)
}

// heapRetained reads what the heap holds from the system: objects (live or not yet swept),
// the unused parts of its spans, free pages not yet returned, and goroutine stacks.
type heapRetained struct{ samples []metrics.Sample }

func newHeapRetained() *heapRetained {
	names := []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes",
		"/memory/classes/heap/free:bytes", "/memory/classes/heap/stacks:bytes"}
	h := &heapRetained{samples: make([]metrics.Sample, len(names))}
	for i, n := range names {
		h.samples[i].Name = n
	}
	return h
}

func (h *heapRetained) read() uint64 {
	metrics.Read(h.samples)
	var n uint64
	for _, s := range h.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			n += s.Value.Uint64()
		}
	}
	return n
}

// trimMemory runs until ctx ends, trimming the heap by trimDue at every tick.
func trimMemory(ctx context.Context, log *slog.Logger) {
	t := time.NewTimer(trimFirst)
	defer t.Stop()
	tr := &trimmer{read: newHeapRetained().read, release: debug.FreeOSMemory, log: log}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tr.check()
			t.Reset(trimEvery)
		}
	}
}

// trimmer is one check of trimMemory, over its reading and release.
type trimmer struct {
	read    func() uint64
	release func()
	log     *slog.Logger
	base    uint64 // retained after the last trim
}

// check trims when trimDue says so, and reports whether it did.
func (t *trimmer) check() bool {
	before := t.read()
	if !trimDue(before, t.base) {
		return false
	}
	t.release()
	t.base = t.read()
	t.log.Debug("heap trimmed: free memory returned to the system", "before", before, "after", t.base)
	return true
}
