package appliance

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewerMode(t *testing.T) {
	t1 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Minute)
	def := modeRecord{Mode: ModeActive}
	tests := []struct {
		name        string
		local, peer modeRecord
		want        modeRecord
		changed     bool
	}{
		{"peer knows nothing yet", def, modeRecord{}, def, false},
		{"same record", modeRecord{ModePassive, t1, "a"}, modeRecord{ModePassive, t1, "a"}, modeRecord{ModePassive, t1, "a"}, false},
		{"peer set later", modeRecord{ModeActive, t1, "a"}, modeRecord{ModePassive, t2, "b"}, modeRecord{ModePassive, t2, "b"}, true},
		{"local set later", modeRecord{ModeActive, t2, "a"}, modeRecord{ModePassive, t1, "b"}, modeRecord{ModeActive, t2, "a"}, false},
		{"run-time setting beats the default", def, modeRecord{ModePassive, t1, "b"}, modeRecord{ModePassive, t1, "b"}, true},
		{"default loses to the local setting", modeRecord{ModePassive, t1, "a"}, def, modeRecord{ModePassive, t1, "a"}, false},
		{"two defaults differ: passive wins", def, modeRecord{Mode: ModePassive}, modeRecord{Mode: ModePassive}, true},
		{"same instant: passive wins on the passive side", modeRecord{ModePassive, t1, "a"}, modeRecord{ModeActive, t1, "b"}, modeRecord{ModePassive, t1, "a"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := newerMode(tc.local, tc.peer)
			if diff := cmp.Diff(tc.want, got); diff != "" || changed != tc.changed {
				t.Errorf("newerMode changed=%t (want %t) (-want +got):\n%s", changed, tc.changed, diff)
			}
		})
	}
}

func TestStartPassive(t *testing.T) {
	for _, tc := range []struct {
		mode BackupMode
		last string
		want bool
	}{
		{ModeActive, "", false}, {ModeActive, "master", false}, {ModePassive, "", true},
		{ModePassive, "backup", true}, {ModePassive, "master", false},
	} {
		if got := startPassive(tc.mode, tc.last); got != tc.want {
			t.Errorf("startPassive(%s, %q) = %t, want %t", tc.mode, tc.last, got, tc.want)
		}
	}
}

func TestNodeStateKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	def := nodeState{Mode: modeRecord{Mode: ModeActive}}
	st, err := loadNodeState(dir, def)
	if err != nil || st != def {
		t.Fatalf("fresh state = %+v, %v", st, err)
	}
	want := nodeState{Mode: modeRecord{ModePassive, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), "pbx-a"}, LastRole: "master"}
	if err := saveNodeState(dir, want); err != nil {
		t.Fatal(err)
	}
	st, err = loadNodeState(dir, def)
	if err != nil || !cmp.Equal(want, st) {
		t.Errorf("reloaded %+v, %v; want %+v", st, err, want)
	}
	if err := os.WriteFile(filepath.Join(dir, nodeStateFile), []byte(`{"mode":{"backup_mode":"sleepy"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := loadNodeState(dir, def); err == nil || st != def {
		t.Errorf("a bad mode on disk: %+v, %v; want the default and an error", st, err)
	}
}

func TestSwapRefusal(t *testing.T) {
	ok := swapInputs{Role: "master", PeerConnected: true, PeerRole: "backup", PeerMode: ModePassive}
	tests := []struct {
		name string
		edit func(*swapInputs)
		want string // "" allowed
	}{
		{"Master with a Backup (passive too)", func(*swapInputs) {}, ""},
		{"asked of a Backup", func(i *swapInputs) { i.Role = "backup" }, "swap refused: this node is backup, not Master; ask the Master"},
		{"twice", func(i *swapInputs) { i.Pending = true }, "swap refused: a swap is already in progress"},
		{"no peer link", func(i *swapInputs) { i.PeerConnected = false }, "swap refused: no Backup present: the peer link is down (force hands over by a priority-0 advert if the Backup is Active)"},
		{"no peer link, forced, Backup was Active", func(i *swapInputs) { i.PeerConnected, i.Force, i.PeerMode = false, true, ModeActive }, ""},
		{"no peer link, forced, Backup was Passive", func(i *swapInputs) { i.PeerConnected, i.Force = false, true },
			"swap refused: no Backup present and the Backup was last passive: nobody would take over"},
		{"peer is Master too (split brain)", func(i *swapInputs) { i.PeerRole = "master" }, "swap refused: the peer is master, not Backup"},
		{"peer still starting", func(i *swapInputs) { i.PeerRole = "" }, "swap refused: the peer is unknown, not Backup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := ok
			tc.edit(&in)
			err := swapRefusal(in)
			got := ""
			if err != nil {
				got = err.Error()
				if !errors.Is(err, ErrSwapRefused) {
					t.Errorf("%v does not wrap ErrSwapRefused", err)
				}
			}
			if got != tc.want {
				t.Errorf("swapRefusal = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAloneWatch(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	w := aloneWatch{after: 4 * time.Second}
	steps := []struct {
		at    time.Duration
		alone bool
		want  bool
	}{
		{0, true, false}, {3 * time.Second, true, false},
		{4 * time.Second, true, true}, // held long enough: once
		{5 * time.Second, true, false},
		{6 * time.Second, false, false}, // a Master again: the episode ends
		{7 * time.Second, true, false}, {10 * time.Second, true, false},
		{11 * time.Second, true, true}, // a new episode, a new event
	}
	for i, s := range steps {
		if got := w.step(s.alone, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d at %v alone %t: %t, want %t", i, s.at, s.alone, got, s.want)
		}
	}
}
