package sync

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestCheckHelpers(t *testing.T) {
	for _, s := range []string{"60s", "1s", "*/5 * * * *", "@hourly", "0 30 2 * * *"} {
		if err := CheckInterval(s); err != nil {
			t.Errorf("CheckInterval(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "500ms", "soon", "61 * * * *", "* * *"} {
		if err := CheckInterval(s); err == nil {
			t.Errorf("CheckInterval(%q) accepted", s)
		}
	}
	hex := strings.Repeat("Ab", 32)
	if fp, err := ParseFingerprint(strings.Repeat("Ab:", 31) + "Ab"); err != nil || fp != strings.ToLower(hex) {
		t.Errorf("ParseFingerprint with colons = %q, %v", fp, err)
	}
	for _, s := range []string{"not-hex", hex[:62], hex + "00"} {
		if _, err := ParseFingerprint(s); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", s)
		}
	}
	dir := t.TempDir()
	if _, err := StoredFingerprint(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("StoredFingerprint of an empty dir = %v, want fs.ErrNotExist", err)
	}
	own, err := LocalFingerprint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := StoredFingerprint(dir); err != nil || got != own {
		t.Errorf("StoredFingerprint = %q, %v; want %q", got, err, own)
	}
}
