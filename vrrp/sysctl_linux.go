package vrrp

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// sysctlJournal records, in the StateDir, the parent interface's ARP settings that
// virtual-MAC mode changed (arp_ignore, arp_announce) with the values they had before, so that
// a daemon killed before it could put them back (SIGKILL, a crash, the OOM killer) has them put
// back by its next start, as the virtual addresses it left are removed. Without it a node that
// once ran in virtual-MAC mode keeps arp_ignore=1 and arp_announce=2 on its LAN interface until
// the next reboot, whatever it is configured to do now.
//
// Each change is recorded before it is made (write-ahead, fsynced: Dial is not on a takeover
// path), and forgotten once the value is back. The record is the only memory of the values:
// once set, the kernel cannot say what they were. Like the address record it is bookkeeping,
// never a condition of redundancy: a journal that cannot be written is logged and the node runs
// on; the next start then cannot restore what this one changed.
//
// Values are kept by /proc/sys path, which names the interface; a record from another boot is
// ignored (the kernel started from its defaults and the distribution's sysctl.conf since).
type sysctlJournal struct {
	path   string
	bootID string
	log    *slog.Logger
	values map[string]string // sysctl path (relative to /proc/sys) -> value before our change
}

// sysctlRecord is the journal's content.
type sysctlRecord struct {
	BootID string            `json:"boot_id"`
	Values map[string]string `json:"values"`
}

// sysctlJournalPath names the journal of one virtual router on one interface; "" without a
// StateDir.
func sysctlJournalPath(dir, ifname string, vrid uint8) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("vmac-sysctl-%s-%d.json", ifname, vrid))
}

// openSysctlJournal reads the journal a previous run left, if any, and puts back every value
// it names (in the calling thread's network namespace: Dial's). A value whose file is gone
// (the interface with it) needs nothing. It returns the journal, empty once the values are
// back, for this run's changes; with path "" it returns nil, which records nothing.
func openSysctlJournal(path string, log *slog.Logger) *sysctlJournal {
	if path == "" {
		return nil
	}
	j := &sysctlJournal{path: path, bootID: readBootID(), log: log, values: map[string]string{}}
	(&recordFile{path: path}).removeLeftovers()
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return j
	case err != nil:
		log.Warn("virtual-MAC sysctl record unreadable; restoring nothing on its strength", "record", path, "err", err)
		return j
	}
	var rec sysctlRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		log.Warn("virtual-MAC sysctl record unreadable; restoring nothing on its strength", "record", path, "err", err)
		j.save()
		return j
	}
	if rec.BootID != j.bootID {
		log.Info("virtual-MAC sysctl record is from an earlier boot; the kernel has reset those values", "record", path)
		j.save()
		return j
	}
	j.values = rec.Values
	if j.values == nil {
		j.values = map[string]string{}
	}
	for _, p := range slices.Sorted(maps.Keys(rec.Values)) {
		v := rec.Values[p]
		if !validSysctlPath(p) {
			log.Warn("virtual-MAC sysctl record names a setting that is not ours; ignoring it", "record", path, "sysctl", p)
			delete(j.values, p)
			continue
		}
		err := writeSysctl(sysctlValue{p, v})
		switch {
		case errors.Is(err, os.ErrNotExist):
			log.Info("setting changed by a previous run is gone with its interface", "sysctl", p)
		case err != nil:
			log.Warn("restoring a setting changed by a previous run failed; keeping it in the record", "sysctl", p, "value", v, "err", err)
			continue
		default:
			log.Info("restored a setting changed by a previous run in virtual-MAC mode", "sysctl", p, "value", v)
		}
		delete(j.values, p)
	}
	j.save()
	return j
}

// validSysctlPath accepts only what virtual-MAC mode changes on a parent: a record edited or
// corrupted into naming another setting changes nothing.
func validSysctlPath(p string) bool {
	dir, leaf := filepath.Split(p)
	name := strings.TrimSuffix(strings.TrimPrefix(dir, "net/ipv4/conf/"), "/")
	return strings.HasPrefix(dir, "net/ipv4/conf/") && name != "" && !strings.Contains(name, "/") &&
		name != "." && name != ".." && (leaf == "arp_ignore" || leaf == "arp_announce")
}

// note records that the setting at path had value old before this run changed it. The first
// note of a path wins: it is the value from before any change of ours.
func (j *sysctlJournal) note(path, old string) {
	if j == nil {
		return
	}
	if _, ok := j.values[path]; ok {
		return
	}
	j.values[path] = old
	j.save()
}

// forget drops the setting at path: its old value is back, or its interface is gone.
func (j *sysctlJournal) forget(path string) {
	if j == nil {
		return
	}
	if _, ok := j.values[path]; !ok {
		return
	}
	delete(j.values, path)
	j.save()
}

// save replaces the record durably (temporary file, rename, fsync of both), or removes it when
// nothing is left to restore. A failure is logged: see sysctlJournal.
func (j *sysctlJournal) save() {
	var err error
	if len(j.values) == 0 {
		err = os.Remove(j.path)
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		} else if err == nil {
			err = fsyncPath(filepath.Dir(j.path))
		}
	} else {
		err = j.write()
	}
	if err != nil {
		j.log.Warn("virtual-MAC sysctl record not written; a crash now leaves the settings for the operator to restore",
			"record", j.path, "values", j.values, "err", err)
	}
}

func (j *sysctlJournal) write() error {
	b, err := json.Marshal(sysctlRecord{BootID: j.bootID, Values: j.values})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o750); err != nil {
		return err
	}
	rf := recordFile{path: j.path}
	err = rf.replace(append(b, '\n'))
	if err == nil {
		err = rf.sync()
	}
	return errors.Join(err, rf.close())
}
