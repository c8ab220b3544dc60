//go:build linux

package main

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/redundantd/redundantd/testlab"
)

// TestSampleGroup reads this test's own process group as bench resources reads a daemon's.
func TestSampleGroup(t *testing.T) {
	pgid := syscall.Getpgrp()
	s, err := sampleGroup(pgid)
	if err != nil {
		t.Fatal(err)
	}
	st, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.pgrp != pgid {
		t.Errorf("readStat: process group %d, want %d", st.pgrp, pgid)
	}
	// VmRSS is RssAnon + RssFile + RssShmem (proc(5)); the test's binary is mapped, so it has
	// file pages.
	if s.pids < 1 || s.rssKB <= 0 || s.anonKB <= 0 || s.fileKB <= 0 || s.anonKB+s.fileKB > s.rssKB || s.thr < 1 || s.ticks < 0 {
		t.Errorf("sample of group %d: %+v", pgid, s)
	}
	if _, err := os.Stat("/proc/self/schedstat"); err == nil && len(s.onCPU) < s.thr {
		t.Errorf("schedstat of %d threads for %d threads", len(s.onCPU), s.thr)
	}
	if _, err := sampleGroup(-1); err == nil {
		t.Error("a process group with no process: no error")
	}
}

func TestResCases(t *testing.T) {
	cs, err := resCases("bare,notify", true)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range cs {
		keys = append(keys, c.key)
	}
	if got := strings.Join(keys, ","); got != "bare,notify,idle,console" {
		t.Errorf("cases %s, want bare,notify,idle,console", got)
	}
	idle, open := cs[2], cs[3]
	if !idle.console || !idle.notify || idle.scrape || idle.browser || !open.console || !open.browser || !open.notify || !open.scrape || cs[0].notify || cs[0].scrape {
		t.Errorf("case settings: %+v", cs)
	}
	for _, bad := range []string{"console", "idle", "nosuch", "bare,,notify"} {
		if _, err := resCases(bad, false); err == nil {
			t.Errorf("-cases %q: no error", bad)
		}
	}
	cs, err = resCases("keepalived", false)
	if testlab.KeepalivedPath() == "" {
		if err == nil {
			t.Errorf("-cases keepalived without keepalived: %+v, want no case to run", cs)
		}
		return
	}
	if err != nil || len(cs) != 1 || cs[0].impl != testlab.Keepalived {
		t.Errorf("-cases keepalived: %+v, %v", cs, err)
	}
}
