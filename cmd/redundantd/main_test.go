package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckAsStrictAsTheDaemon runs -check on each of appliance's bad configurations (one
// mistake each; the header names the key): every one exits 2 naming the key, as the daemon
// itself does, where before some were "valid" for -check and then stopped the daemon with
// exit 1 (issue 12 item 7).
func TestCheckAsStrictAsTheDaemon(t *testing.T) {
	paths, err := filepath.Glob("../../appliance/testdata/bad/*.toml")
	if err != nil || len(paths) < 20 {
		t.Fatalf("appliance/testdata/bad: %d files, %v", len(paths), err)
	}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		key, _, _ := strings.Cut(strings.TrimPrefix(string(b), "# want: "), "\n")
		t.Run(filepath.Base(path), func(t *testing.T) {
			for _, args := range [][]string{{"-check", "-config", path}, {"-config", path}} {
				var out, errb bytes.Buffer
				if code := run(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), key+" ") && !strings.Contains(errb.String(), key+":") {
					t.Errorf("redundantd %s: exit %d, want 2 naming %s; stdout %q, stderr %q", strings.Join(args, " "), code, key, out.String(), errb.String())
				}
				if out.Len() != 0 {
					t.Errorf("redundantd %s: stdout %q", strings.Join(args, " "), out.String())
				}
			}
		})
	}
}

func TestExitStatus(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.toml", "[node]\ninterface = \"eth0\"\naddress = \"192.0.2.11\"\nstate_dir = \""+dir+"\"\n[redundancy]\ngroup_id = 18\nvirtual_ips = [\"192.0.2.100/24\"]\n")
	// A version 3 group at 100 ms under a version 2 [redundancy]: valid for -check as for the
	// daemon (the group's interval is checked by its own version's rule).
	goodV3 := write("good-v3.toml", "[node]\ninterface = \"eth0\"\naddress = \"192.0.2.11\"\nstate_dir = \""+dir+"\"\n[redundancy]\ngroup_id = 18\nvirtual_ips = [\"192.0.2.100/24\"]\n"+
		"[[redundancy.group]]\ninterface = \"eth1\"\ngroup_id = 18\nversion = 3\nadvert_interval = \"100ms\"\nvirtual_ips = [\"198.51.100.100/24\"]\n")
	bad := write("bad.toml", "[node]\ninterface = \"eth0\"\naddress = \"192.0.2.11\"\n[redundancy]\ngroup_id = 300\nvirtual_ips = [\"192.0.2.100\"]\n")
	tests := []struct {
		name     string
		args     []string
		want     int
		wantOut  string
		wantErrs []string
	}{
		{"valid -check", []string{"-check", "-config", good}, 0, "configuration is valid", nil},
		{"valid -check, a version 3 group at 100ms", []string{"-check", "-config", goodV3}, 0, "configuration is valid", nil},
		{"bad values name their keys", []string{"-config", bad}, 2, "", []string{"redundancy.group_id", "out of range 1..255", "redundancy.virtual_ips[0]", "no prefix length"}},
		{"missing file", []string{"-config", filepath.Join(dir, "none.toml")}, 2, "", []string{"none.toml"}},
		{"bad flag", []string{"-nope"}, 2, "", []string{"-nope"}},
		{"bad log level", []string{"-log-level", "loud", "-config", good}, 2, "", []string{"-log-level"}},
		{"fingerprint", []string{"-fingerprint", "-config", good}, 0, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := run(tt.args, &out, &errb); got != tt.want {
				t.Fatalf("exit status %d, want %d; stderr:\n%s", got, tt.want, errb.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q does not contain %q", out.String(), tt.wantOut)
			}
			for _, w := range tt.wantErrs {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr %q does not contain %q", errb.String(), w)
				}
			}
		})
	}
	// -fingerprint prints the same 64 hex digits every time: the certificate is kept.
	var a, b bytes.Buffer
	run([]string{"-fingerprint", "-config", good}, &a, &bytes.Buffer{})
	run([]string{"-fingerprint", "-config", good}, &b, &bytes.Buffer{})
	if fp := strings.TrimSpace(a.String()); len(strings.ReplaceAll(fp, ":", "")) < 64 || a.String() != b.String() {
		t.Errorf("fingerprints %q and %q", a.String(), b.String())
	}
}
