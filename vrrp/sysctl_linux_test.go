package vrrp

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeSysctlIn sets a /proc/sys value inside n.
func writeSysctlIn(t *testing.T, n *testNS, path, value string) {
	t.Helper()
	var err error
	n.do(t, func() { err = writeSysctl(sysctlValue{path, value}) })
	if err != nil {
		t.Fatal(err)
	}
}

func readSysctlRecord(t *testing.T, path string) (sysctlRecord, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return sysctlRecord{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var rec sysctlRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rec, true
}

// Issue 8 section 3: the parent's arp_ignore/arp_announce that virtual-MAC mode changed are
// recorded before the change; a run killed before it could restore them has them restored by
// the next start, and a clean stop leaves no record. A record from another boot, or naming a
// setting that is not ours, changes nothing.
func TestVMACSysctlJournal(t *testing.T) {
	a, b := newTestNS(t), newTestNS(t)
	connect(t, a, "vrt0", labA, b, "vrt1", labB)
	needMacvlan(t, a, "vrt0")
	const ign, ann = "net/ipv4/conf/vrt0/arp_ignore", "net/ipv4/conf/vrt0/arp_announce"
	// Values other than the kernel's defaults, so that a restore is told from a reset.
	writeSysctlIn(t, a, ign, "2")
	writeSysctlIn(t, a, ann, "1")
	dir := t.TempDir()
	path := sysctlJournalPath(dir, "vrt0", 51)
	log := testLogger(t, "a")

	setup := func() *vmacLink {
		t.Helper()
		var v *vmacLink
		var err error
		a.do(t, func() {
			j := openSysctlJournal(path, log)
			v, err = setupVMAC(a.h, a.link(t, "vrt0"), 51, false, j, log)
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	check := func(when, wantIgn, wantAnn string) {
		t.Helper()
		if gi, ga := readSysctlIn(t, a, ign), readSysctlIn(t, a, ann); gi != wantIgn || ga != wantAnn {
			t.Errorf("%s: arp_ignore %s, arp_announce %s; want %s and %s", when, gi, ga, wantIgn, wantAnn)
		}
	}

	v := setup()
	check("virtual-MAC mode on", "1", "2")
	rec, ok := readSysctlRecord(t, path)
	if want := map[string]string{ign: "2", ann: "1"}; !ok || rec.BootID != readBootID() || !cmp.Equal(rec.Values, want) {
		t.Errorf("record while running: %+v (exists %t); want this boot's and %v", rec, ok, want)
	}

	// A crash: nothing restored, the macvlan left behind.
	for _, r := range v.restore {
		r.f.Close()
	}
	check("after the crash", "1", "2")
	a.do(t, func() { openSysctlJournal(path, log) }) // the next start, in either mode
	check("after the next start", "2", "1")
	if _, ok := readSysctlRecord(t, path); ok {
		t.Error("record left after the values were restored")
	}

	// A clean stop restores and leaves no record; the next start changes nothing.
	v = setup() // replaces the leftover macvlan
	check("virtual-MAC mode on again", "1", "2")
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	check("after a clean stop", "2", "1")
	if _, ok := readSysctlRecord(t, path); ok {
		t.Error("record left after a clean stop")
	}

	for _, tc := range []struct {
		name string
		rec  sysctlRecord
	}{
		{"earlier boot", sysctlRecord{BootID: "an-earlier-boot", Values: map[string]string{ign: "0"}}},
		{"not our setting", sysctlRecord{BootID: readBootID(), Values: map[string]string{
			"net/ipv4/conf/vrt0/rp_filter": "2", "net/ipv4/conf/../conf/vrt0/arp_ignore": "0", "kernel/hostname": "x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := json.Marshal(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			rp := readSysctlIn(t, a, "net/ipv4/conf/vrt0/rp_filter")
			a.do(t, func() { openSysctlJournal(path, log) })
			check("after the start", "2", "1")
			if got := readSysctlIn(t, a, "net/ipv4/conf/vrt0/rp_filter"); got != rp {
				t.Errorf("rp_filter %s, want %s untouched", got, rp)
			}
			if _, ok := readSysctlRecord(t, path); ok {
				t.Error("the ignored record is still there")
			}
		})
	}

	// A record naming an interface that is gone needs nothing.
	rec = sysctlRecord{BootID: readBootID(), Values: map[string]string{"net/ipv4/conf/vrt9/arp_ignore": "0"}}
	data, _ := json.Marshal(rec)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a.do(t, func() { openSysctlJournal(path, log) })
	if _, ok := readSysctlRecord(t, path); ok {
		t.Error("record of a vanished interface kept")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}
