package appliance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// BackupMode is how the group's Backup behaves (seed 004, section 7): an Active Backup takes
// over when the Master goes silent; a Passive Backup keeps replicating and reporting but
// becomes Master only through a swap, for upgrades and restores.
type BackupMode string

const (
	ModeActive  BackupMode = "active"
	ModePassive BackupMode = "passive"
)

// ParseBackupMode accepts "active" or "passive".
func ParseBackupMode(s string) (BackupMode, error) {
	switch m := BackupMode(s); m {
	case ModeActive, ModePassive:
		return m, nil
	}
	return "", fmt.Errorf("backup mode %q: want \"active\" or \"passive\"", s)
}

// modeRecord is the group's Backup mode as this node knows it. The mode belongs to the group,
// not to one box: both nodes keep it, the newest setting wins when they compare (over the
// peer link), and whichever node is Backup applies it. So after a swap the new Backup has
// the mode the old Backup had (seed section 8), and a mode set on either node reaches the
// other as soon as they talk.
type modeRecord struct {
	Mode  BackupMode `json:"backup_mode"`
	SetAt time.Time  `json:"set_at,omitzero"` // zero: the configuration's default, never set at run time
	SetBy string     `json:"set_by,omitempty"`
}

// newerMode decides between this node's record and the peer's: the later setting wins; the
// configuration's default (zero time) loses to any run-time setting; when both were set at
// the same instant and differ, passive wins, since a Passive Backup that should be Active
// costs an automatic failover, while an Active one that should be Passive can take over in
// the middle of an upgrade.
func newerMode(local, peer modeRecord) (modeRecord, bool) {
	switch {
	case peer.Mode == "" || peer == local:
		return local, false
	case peer.SetAt.After(local.SetAt):
		return peer, true
	case peer.SetAt.Equal(local.SetAt) && local.Mode != peer.Mode && peer.Mode == ModePassive:
		return peer, true
	}
	return local, false
}

// startPassive decides whether the VRRP engine starts passive. A node that was Master when it
// stopped starts Active whatever the group's mode: after a power loss of both boxes, two
// Passive nodes would wait for each other forever, and the last Master is the one with the
// newest data. Once it has a role, the mode applies as usual.
func startPassive(m BackupMode, lastRole string) bool {
	return m == ModePassive && lastRole != "master"
}

// nodeState is what the appliance keeps in state_dir across restarts besides the event log.
type nodeState struct {
	Mode     modeRecord `json:"mode"`
	LastRole string     `json:"last_role,omitempty"` // "master" or "backup"
}

const nodeStateFile = "appliance.json"

// loadNodeState reads the kept state; a missing file gives def. A corrupt file is reported
// and replaced by def, never fatal: the node must run without its disk.
func loadNodeState(dir string, def nodeState) (nodeState, error) {
	b, err := os.ReadFile(filepath.Join(dir, nodeStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return def, err
	}
	st := def
	if err := json.Unmarshal(b, &st); err != nil {
		return def, fmt.Errorf("%s: %w", nodeStateFile, err)
	}
	if _, err := ParseBackupMode(string(st.Mode.Mode)); err != nil {
		return def, fmt.Errorf("%s: %w", nodeStateFile, err)
	}
	return st, nil
}

func saveNodeState(dir string, st nodeState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, nodeStateFile), append(b, '\n'), 0o600)
}
