//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/redundantd/redundantd/testlab"
)

// TestMain removes the redundantd binary the lab tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	testlab.RemoveBinaries()
	os.Exit(code)
}

// TestDemo runs the whole demo on the real daemons. The demo checks each step itself (one
// Master, the message on the other node, a quiet returning Backup, a Passive Backup that does
// not take over, the message left before the swap on the new Master) and fails otherwise;
// the test also checks that its story is told in order and that no namespace is left.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the lab demo in -short mode")
	}
	testlab.RequireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("util-linux's unshare is not installed")
	}
	var out bytes.Buffer
	err := demoMain(t.Context(), &out, nil)
	testlab.SkipIfUnprivileged(t, err)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	// Each group is one step of the story, in order; within a group the rows may come in
	// any order (the VIP and the berofos set of one takeover can share a millisecond).
	rest := got
	for _, group := range [][]string{
		{`up active event on node1: "Backup device with ID 51-0.4.0-node2 is UP (Active mode)"`},
		{"PBX running on node1\n"},
		{"written on node1 is on node2"},
		{"SIGKILL sent to redundantd@node1"},
		{"192.0.2.100 added to node2", "berofos fos1: set mode=0", "PBX service started on node2"},
		{"node1 is backup (master_ip 192.0.2.12), sent 0 adverts and 0 berofos sets"},
		{"(replication node2 -> node1)"},
		{"mode passive, peer confirmed; node1 reports passive"},
		{"node1 is still backup (passive true): 0 adverts sent, virtual IP on node1: false, PBX on node1: false, ISDN lines on node2"},
		{"192.0.2.100 added to node1", "berofos fos1: set mode=1", "PBX service started on node1"},
		{"final sync"},
		{"answered: done, new Master node2"},
		{"message 3 on node2: true; ISDN lines on node2 (relay A-D); PBX running on node2"},
		{"Status Time"},
		{"swap done"},
		{"node2: master since"},
		{"lab removed: 0 namespaces left"},
	} {
		end := 0
		for _, want := range group {
			i := strings.Index(rest, want)
			if i < 0 {
				t.Fatalf("the demo's output lacks %q after the previous step:\n%s", want, got)
			}
			end = max(end, i+len(want))
		}
		rest = rest[end:]
	}
}
