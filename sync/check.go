package sync

import (
	"fmt"
	"os"
	"path/filepath"
)

// Validators for the settings New checks, exported so that a caller can reject a bad
// configuration before it starts anything (redundantd -check, a reload) with the same rules
// New applies.

// MaxTrees is the most Config.Paths a Node replicates (the wire's tree index).
const MaxTrees = maxTrees

// ParseFingerprint normalizes a certificate fingerprint as Config.PeerFingerprint takes it
// (64 hex digits, colons and case ignored) or says why it is not one.
func ParseFingerprint(s string) (string, error) { return normalizeFingerprint(s) }

// CheckInterval reports whether s is a Config.Interval New accepts: a duration of at least
// one second or a cron spec.
func CheckInterval(s string) error {
	_, err := parseInterval(s)
	return err
}

// StoredFingerprint returns the fingerprint of the certificate already in stateDir. Unlike
// LocalFingerprint it creates nothing: when there is no certificate yet the error wraps
// fs.ErrNotExist.
func StoredFingerprint(stateDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, certFile))
	if err != nil {
		return "", fmt.Errorf("sync: certificate: %w", err)
	}
	return Fingerprint(b)
}
