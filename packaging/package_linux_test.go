package packaging

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The package is built once per test binary: go build of both commands with -trimpath is
// the slow part.
var built struct {
	deb string
	err error
	out string
}

func buildDeb(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("skipping: dpkg-deb is not installed (apt-get install dpkg)")
	}
	if built.deb == "" && built.err == nil {
		dir, err := os.MkdirTemp("", "redundantd-deb-")
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", "build.sh", "-o", dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		built.deb, built.err, built.out = strings.TrimSpace(string(out)), err, stderr.String()
	}
	if built.err != nil {
		t.Fatalf("build.sh: %v\n%s", built.err, built.out)
	}
	return built.deb
}

func TestMain(m *testing.M) {
	if os.Getenv(sleeperEnv) == "1" {
		sleeper()
	}
	code := m.Run()
	if built.deb != "" {
		os.RemoveAll(filepath.Dir(built.deb))
	}
	os.Exit(code)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// verifyUnit runs systemd-analyze verify on unit; with root it resolves the unit's commands
// and man pages in that file system tree.
func verifyUnit(t *testing.T, unit string, args ...string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("skipping: systemd-analyze is not installed (apt-get install systemd)")
	}
	out, err := exec.Command(sa, append(append([]string{"verify"}, args...), unit)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}

// TestUnitVerifies: the unit as in the repository, with its commands pointing at binaries of
// this checkout (the installed unit is verified with its real paths in TestPackage).
func TestUnitVerifies(t *testing.T) {
	unit, err := os.ReadFile("redundantd.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "redundantd")
	// Any executable does: verify checks that the command exists, not what it does.
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), "/usr/sbin/redundantd", bin)
	if strings.Contains(text, "/usr/sbin/redundantd") || !strings.Contains(text, "Type=notify") {
		t.Fatal("unit: commands not rewritten or not Type=notify")
	}
	path := filepath.Join(dir, "redundantd.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	verifyUnit(t, path, "--man=no")
}

// TestCompletion completes the commands, berofos subcommands and flags from the repository's
// completion file (the installed one is tried in TestPackage).
func TestCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("skipping: no bash")
	}
	tests := []struct {
		words []string
		want  string
	}{
		{[]string{"redundantctl", ""}, "status events mode swap sync berofos"},
		{[]string{"redundantctl", "s"}, "status swap sync"},
		{[]string{"redundantctl", "mode", "p"}, "passive"},
		{[]string{"redundantctl", "events", "-f"}, "-follow"},
		{[]string{"redundantctl", "berofos", "-t", "3", "k"}, "kick"},
		{[]string{"redundantctl", "berofos", "kick", "-"}, "-conf -f -h -m -u -t -udp-port -json -c -w"},
		{[]string{"redundantctl", "berofos", "netconf", "-g"}, "-g"},
		{[]string{"redundantctl", "nosuch", ""}, ""},
	}
	for _, tt := range tests {
		if got := complete(t, "completion/redundantctl", tt.words...); got != tt.want {
			t.Errorf("completing %q: %q, want %q", tt.words, got, tt.want)
		}
	}
	// -f completes the device sections of the bnfos.conf given with -conf.
	conf := filepath.Join(t.TempDir(), "bnfos.conf")
	if err := os.WriteFile(conf, []byte("[fos1]\nhost = 192.0.2.5\n[fos2]\nhost = 192.0.2.6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := complete(t, "completion/redundantctl", "redundantctl", "berofos", "-conf", conf, "-f", "fos"); got != "fos1 fos2" {
		t.Errorf("completing -f: %q, want fos1 fos2", got)
	}
}

// TestLintian: lintian finds no error or warning (the overrides are explained in
// debian/lintian-overrides).
func TestLintian(t *testing.T) {
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Skip("skipping: lintian is not installed (apt-get install lintian)")
	}
	deb := buildDeb(t)
	out, err := exec.Command("lintian", "--fail-on", "error,warning", deb).CombinedOutput()
	var tags []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
			tags = append(tags, l)
		}
	}
	if err != nil || len(tags) != 0 {
		t.Errorf("lintian %s: %v\n%s", deb, err, out)
	}
}

// TestPackage installs the package on this machine with dpkg -i, checks the shipped
// configuration with redundantd -check, the man pages, the completion and the unit, then
// removes and purges it and checks that none of its files is left. The daemon is not
// started: the package does not enable it, and the test checks it never ran.
func TestPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: dpkg -i needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("skipping: dpkg is not installed")
	}
	if exec.Command("dpkg-query", "-W", "-f=${Status}", "redundantd").Run() == nil {
		out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "redundantd").Output()
		if !strings.Contains(string(out), "not-installed") {
			t.Skipf("skipping: a redundantd package is already on this machine (%s); the test would remove it", out)
		}
	}
	if _, err := os.Stat("/var/lib/redundantd"); err == nil {
		t.Skip("skipping: /var/lib/redundantd exists; purging the package would delete it")
	}
	deb := buildDeb(t)
	files := packageFiles(t, deb)

	t.Cleanup(func() {
		// Never leave the machine with the package on it, whatever failed.
		if out, err := exec.Command("dpkg", "--purge", "redundantd").CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg --purge: %v\n%s", err, out)
		}
	})
	run(t, "dpkg", "-i", deb)

	out := run(t, "/usr/sbin/redundantd", "-check", "-config", "/etc/redundantd/redundantd.toml")
	if !strings.Contains(out, "configuration is valid") {
		t.Errorf("redundantd -check: %q", out)
	}
	if got := strings.TrimSpace(run(t, "dpkg-query", "-W", "-f=${Conffiles}", "redundantd")); !strings.HasPrefix(got, "/etc/redundantd/redundantd.toml ") {
		t.Errorf("conffiles: %q", got)
	}
	for page, want := range map[string]string{"8 redundantd": "/usr/share/man/man8/redundantd.8.gz", "1 redundantctl": "/usr/share/man/man1/redundantctl.1.gz"} {
		args := strings.Fields(page)
		if manExcluded() {
			t.Logf("not checking man %s: dpkg is configured to skip /usr/share/man (path-exclude in /etc/dpkg/dpkg.cfg.d)", page)
			continue
		}
		if _, err := exec.LookPath("man"); err != nil {
			if _, err := os.Stat(want); err != nil {
				t.Error(err)
			}
			continue
		}
		if got := strings.TrimSpace(run(t, "man", "-w", args[0], args[1])); got != want {
			t.Errorf("man -w %s = %q, want %s", page, got, want)
		}
		if text := run(t, "man", "-P", "cat", args[0], args[1]); !strings.Contains(text, "SYNOPSIS") {
			t.Errorf("man %s does not render:\n%s", page, text)
		}
	}
	completion := "/usr/share/bash-completion/completions/redundantctl"
	if got := complete(t, completion, "redundantctl", "sw"); got != "swap" {
		t.Errorf("completing 'redundantctl sw': %q, want swap", got)
	}
	if got := complete(t, completion, "redundantctl", "berofos", "ma"); got != "master" {
		t.Errorf("completing 'redundantctl berofos ma': %q, want master", got)
	}
	if got := complete(t, completion, "redundantctl", "swap", "-d"); got != "-drain" {
		t.Errorf("completing 'redundantctl swap -d': %q, want -drain", got)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		verifyUnit(t, "/lib/systemd/system/redundantd.service")
	}
	mib, err := os.ReadFile("/usr/share/snmp/mibs/REDUNDANTD-MIB.txt")
	if want, rerr := os.ReadFile("../docs/mib/REDUNDANTD-MIB.mib"); err != nil || rerr != nil || !bytes.Equal(mib, want) {
		t.Errorf("installed REDUNDANTD-MIB is not docs/mib/REDUNDANTD-MIB.mib (%v, %v)", err, rerr)
	}
	if _, err := os.Stat("/var/lib/redundantd/api.token"); err == nil {
		t.Error("the daemon ran on install (api.token exists)")
	}

	run(t, "dpkg", "-r", "redundantd")
	if _, err := os.Stat("/usr/sbin/redundantd"); err == nil {
		t.Error("dpkg -r left /usr/sbin/redundantd")
	}
	if _, err := os.Stat("/etc/redundantd/redundantd.toml"); err != nil {
		t.Errorf("dpkg -r removed the conffile: %v", err)
	}
	run(t, "dpkg", "--purge", "redundantd")
	for _, f := range append(files, "/etc/redundantd", "/usr/share/doc/redundantd", "/var/lib/redundantd") {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("left behind after purge: %s", f)
		}
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "redundantd").Output(); len(out) != 0 && !strings.Contains(string(out), "not-installed") {
		t.Errorf("dpkg still knows the package: %s", out)
	}
}

// packageFiles lists the files (not directories) of a .deb, as absolute paths.
func packageFiles(t *testing.T, deb string) []string {
	t.Helper()
	var files []string
	sc := bufio.NewScanner(strings.NewReader(run(t, "dpkg-deb", "-c", deb)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		files = append(files, strings.TrimPrefix(f[5], "."))
	}
	if len(files) < 8 {
		t.Fatalf("dpkg-deb -c %s: %d files: %v", deb, len(files), files)
	}
	return files
}

// complete runs the completion function as bash does for words (the last is the word being
// completed) and returns the candidates.
func complete(t *testing.T, file string, words ...string) string {
	t.Helper()
	script := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _redundantctl; echo "${COMPREPLY[*]}"`
	return strings.TrimSpace(run(t, "bash", append([]string{"-c", script, "bash", file}, words...)...))
}

// manExcluded reports whether dpkg drops man pages on install (Debian's container images).
func manExcluded() bool {
	paths, _ := filepath.Glob("/etc/dpkg/dpkg.cfg.d/*")
	for _, p := range append(paths, "/etc/dpkg/dpkg.cfg") {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "path-exclude" && strings.HasPrefix(f[1], "/usr/share/man") {
				return true
			}
		}
	}
	return false
}
