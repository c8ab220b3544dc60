package syncbuf

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// Writers on many goroutines lose nothing; Lines and Tail read what they wrote.
func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { fmt.Fprintf(&b, "line %02d\n", i) })
	}
	wg.Wait()
	got := b.Lines("line ")
	slices.Sort(got)
	if len(got) != 50 || got[0] != "line 00" || got[49] != "line 49" {
		t.Errorf("Lines = %q", got)
	}
	if n := len(b.Lines("line 4")); n != 10 {
		t.Errorf("%d lines with %q, want 10", n, "line 4")
	}
	if tail := b.Tail(8); len(tail) != 8 || tail[7] != '\n' {
		t.Errorf("Tail(8) = %q", tail)
	}
	if all := b.Tail(1 << 20); all != b.String() {
		t.Errorf("Tail of more than was written is not all of it")
	}
}
