package packaging

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sleeperEnv makes the test binary a Go program that only waits (TestMain calls sleeper):
// what the Go runtime does with a signal is the same in every Go program, the daemon's too.
const sleeperEnv = "REDUNDANTD_TEST_SLEEPER"

func sleeper() {
	fmt.Println("ready")
	time.Sleep(time.Minute)
	os.Exit(0)
}

// unitValues is every value of key= in the unit's [Service] section, split at spaces.
func unitValues(t *testing.T, key string) []string {
	t.Helper()
	b, err := os.ReadFile("redundantd.service")
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"="); ok {
			vals = append(vals, strings.Fields(v)...)
		}
	}
	return vals
}

// abortOutcome runs the sleeper with env added, sends it SIGABRT (systemd's WatchdogSignal)
// once it runs, and returns how it ended as systemd sees it: exited with a status, or killed
// by a signal.
func abortOutcome(t *testing.T, env []string) syscall.WaitStatus {
	t.Helper()
	// No core file from the abort (the runtime may raise SIGABRT on itself).
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &old); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_CORE, &old)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = t.TempDir()
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GOTRACEBACK=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(append(cmd.Env, sleeperEnv+"=1"), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || l != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("sleeper: %q, %v", l, err)
	}
	if err := cmd.Process.Signal(syscall.SIGABRT); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	return cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// TestUnitRestartsAnAbort: with the unit's Environment=, a Go program that gets SIGABRT (what
// systemd sends on a watchdog timeout) ends in a way RestartPreventExitStatus= does not
// name, so Restart=always restarts it. Without GOTRACEBACK=crash the runtime exits with
// status 2 (as on a panic), the unit's "unusable configuration" status, and a stuck daemon
// stayed down under systemd (docs/packaging.md).
func TestUnitRestartsAnAbort(t *testing.T) {
	prevent := map[string]bool{}
	for _, v := range unitValues(t, "RestartPreventExitStatus") {
		prevent[v] = true
	}
	ws := abortOutcome(t, unitValues(t, "Environment"))
	switch {
	case ws.Exited() && prevent[strconv.Itoa(ws.ExitStatus())]:
		t.Errorf("with the unit's environment SIGABRT ends the program with exit status %d, which RestartPreventExitStatus=%v keeps from restarting", ws.ExitStatus(), unitValues(t, "RestartPreventExitStatus"))
	case ws.Signaled() && (prevent[strconv.Itoa(int(ws.Signal()))] || prevent["SIGABRT"] || prevent["ABRT"]):
		t.Errorf("with the unit's environment SIGABRT kills the program, and RestartPreventExitStatus=%v names the signal", unitValues(t, "RestartPreventExitStatus"))
	case !ws.Exited() && !ws.Signaled():
		t.Errorf("the program neither exited nor was killed: %v", ws)
	}
	t.Logf("SIGABRT with the unit's environment: %s; without it: %s", describeWait(ws), describeWait(abortOutcome(t, nil)))
}

func describeWait(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}
