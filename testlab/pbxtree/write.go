package pbxtree

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// WriteFile writes data to name (mode 0644), creating its folders, and sets its mtime unless
// mtime is zero; a failure fails t. Tests build the trees they replicate with it.
func WriteFile(t testing.TB, name string, data []byte, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}
