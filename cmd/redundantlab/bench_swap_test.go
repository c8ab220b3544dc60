//go:build linux

package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redundantd/redundantd/testlab"
)

func TestSummarizeSwaps(t *testing.T) {
	ms := time.Millisecond
	run := func(sync, gap, ips, lines, answered time.Duration, lost bool) swapRun {
		return swapRun{Sync: sync, Gap: gap, IPs: ips, Lines: lines, Answered: answered, Lost: lost}
	}
	tests := []struct {
		name string
		runs []swapRun
		want swapSummary
	}{
		{"none", nil, swapSummary{}},
		{
			"one run within the targets",
			[]swapRun{run(40*ms, 3*ms, 80*ms, 90*ms, 95*ms, false)},
			swapSummary{Runs: 1, SyncMedian: 40 * ms, SyncWorst: 40 * ms, GapMedian: 3 * ms, GapWorst: 3 * ms,
				IPsLinesMedian: 90 * ms, IPsLinesWorst: 90 * ms, NoSyncMedian: 50 * ms, NoSyncWorst: 50 * ms,
				AnsweredMedian: 95 * ms, AnsweredWorst: 95 * ms, GapWithinTarget: true, LinesWithinTarget: true},
		},
		{
			// The lines after the IPs in one run, before them in the other: the later counts.
			// A negative gap is an overlap. The slow final sync is not held against the lines.
			"three runs, a slow sync, a lost message, a gap over target",
			[]swapRun{
				run(10*ms, -1*ms, 50*ms, 40*ms, 60*ms, false),
				run(2000*ms, 150*ms, 2100*ms, 2200*ms, 2300*ms, true),
				run(30*ms, 5*ms, 70*ms, 80*ms, 90*ms, false),
			},
			swapSummary{Runs: 3, SyncMedian: 30 * ms, SyncWorst: 2000 * ms, GapMedian: 5 * ms, GapWorst: 150 * ms,
				IPsLinesMedian: 80 * ms, IPsLinesWorst: 2200 * ms, NoSyncMedian: 50 * ms, NoSyncWorst: 200 * ms,
				AnsweredMedian: 90 * ms, AnsweredWorst: 2300 * ms, Lost: 1, GapWithinTarget: false, LinesWithinTarget: true},
		},
		{
			"the lines a second after the command with nothing to sync",
			// The second run answered before the berofos was set.
			[]swapRun{run(0, 2*ms, 60*ms, 1000*ms, 1001*ms, false), run(0, 2*ms, 60*ms, 70*ms, 65*ms, false)},
			swapSummary{Runs: 2, GapMedian: 2 * ms, GapWorst: 2 * ms, IPsLinesMedian: 535 * ms, IPsLinesWorst: 1000 * ms,
				NoSyncMedian: 535 * ms, NoSyncWorst: 1000 * ms, AnsweredMedian: 533 * ms, AnsweredWorst: 1001 * ms,
				EarlyAnswers: 1, GapWithinTarget: true, LinesWithinTarget: false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, summarize(tt.runs)); diff != "" {
				t.Errorf("summarize (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBenchSwapLab runs two swaps on the real appliance pair: both succeed, the IPs and the
// lines follow each, and the voicemail left just before each is on the new Master. (The
// figures themselves are the benchmark's output, not asserted here.)
func TestBenchSwapLab(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the lab run in -short mode")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("util-linux's unshare is not installed")
	}
	l := testlab.NewT(t, testlab.Options{Nodes: 2})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := benchSwapLab(ctx, &out, l, swapOptions{runs: 2}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"   1 node1 -> node2", "   2 node2 -> node1", "voicemails lost: 0 of 2 (must be 0)"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
