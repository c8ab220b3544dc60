package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
	"github.com/redundantd/redundantd/vrrp"
)

// eventTimeout bounds how long a test waits for an event that must come; it is a failure
// timeout, not a timing assertion.
const eventTimeout = 20 * time.Second

// svcRig is a ServiceManager running under a test, with the events it records.
type svcRig struct {
	m      *ServiceManager
	events chan Event
	seen   []Event
	dir    string
	done   chan error
	cancel context.CancelFunc
}

// logScript is a sh command that appends line to the rig's log file, so that tests can
// check the order in which commands ran.
func (r *svcRig) logScript(line string) []string {
	return []string{"sh", "-c", fmt.Sprintf("echo %s >> %s", line, filepath.Join(r.dir, "log"))}
}

// simpleService starts and stops by writing "start-NAME" / "stop-NAME" to the log.
func (r *svcRig) simpleService(name string) ServiceConfig {
	return ServiceConfig{Name: name, Start: r.logScript("start-" + name), Stop: r.logScript("stop-" + name),
		Timeout: 10 * time.Second}
}

func (r *svcRig) log(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func newSvcRig(t *testing.T) *svcRig {
	return &svcRig{events: make(chan Event, 1000), dir: t.TempDir()}
}

// start builds the manager from cfg and runs it until the test ends.
func (r *svcRig) start(t *testing.T, cfg ServiceManagerConfig) {
	t.Helper()
	m, err := NewServiceManager(cfg, func(e Event) Event { r.events <- e; return e })
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan error, 1)
	go func() { r.done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitEvent returns the next event called name whose message contains substr; the events
// before it are kept in r.seen.
func (r *svcRig) waitEvent(t *testing.T, name, substr string) Event {
	t.Helper()
	timeout := time.After(eventTimeout)
	for {
		select {
		case e := <-r.events:
			r.seen = append(r.seen, e)
			if e.Application != AppService {
				t.Errorf("event from application %q, want SERVICE: %+v", e.Application, e)
			}
			if e.Name == name && strings.Contains(e.Description, substr) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %q event containing %q; seen: %+v", name, substr, r.seen)
		}
	}
}

// names are the names and first words of service of the events seen so far, e.g.
// "started a".
func (r *svcRig) names() []string {
	var out []string
	for _, e := range r.seen {
		f := strings.Fields(e.Description)
		out = append(out, e.Name+" "+f[1])
	}
	return out
}

func (r *svcRig) status() []ServiceStatus { return r.m.Status().([]ServiceStatus) }

func equalWords(got []string, want ...string) bool {
	return strings.Join(got, " ") == strings.Join(want, " ")
}

func TestServicesStartInOrderStopInReverse(t *testing.T) {
	r := newSvcRig(t)
	r.start(t, ServiceManagerConfig{Services: []ServiceConfig{
		r.simpleService("a"), r.simpleService("b"), r.simpleService("c")}})

	r.m.Follow(vrrp.StateMaster)
	r.waitEvent(t, "started", "service c ")
	if got := r.log(t); !equalWords(got, "start-a", "start-b", "start-c") {
		t.Errorf("becoming Master ran %q, want start-a start-b start-c", got)
	}
	for _, s := range r.status() {
		if s.State != ServiceRunning || s.LastExit == nil || *s.LastExit != 0 || s.LastCommand != "start" || !s.Healthy {
			t.Errorf("after start: %+v", s)
		}
	}

	r.m.Follow(vrrp.StateBackup)
	r.waitEvent(t, "stopped", "service a ")
	if got := r.log(t); !equalWords(got, "start-a", "start-b", "start-c", "stop-c", "stop-b", "stop-a") {
		t.Errorf("becoming Backup ran %q, want stop-c stop-b stop-a after the starts", got)
	}
	if got := r.names(); !equalWords(got, "started a", "started b", "started c", "stopped c", "stopped b", "stopped a") {
		t.Errorf("events %q", got)
	}
	for _, s := range r.status() {
		if s.State != ServiceStopped {
			t.Errorf("after stop: %+v", s)
		}
	}
}

// processGone reports whether pid has exited (a zombie counts: it runs nothing).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

func TestServicesHungStartIsKilledAndBackupFollows(t *testing.T) {
	r := newSvcRig(t)
	pidFile := filepath.Join(r.dir, "pid")
	hung := r.simpleService("a")
	// The start prints a line, leaves a child sleeping in its process group and waits for it.
	hung.Start = []string{"sh", "-c", fmt.Sprintf("echo start-a >> %s/log; echo hanging now; sleep 600 & echo $! > %s; wait",
		r.dir, pidFile)}
	hung.Timeout = 300 * time.Millisecond
	r.start(t, ServiceManagerConfig{Services: []ServiceConfig{hung, r.simpleService("b")}})

	r.m.Follow(vrrp.StateMaster)
	poll.Until(t, 5*time.Second, "the hung start to run", func() bool { _, err := os.Stat(pidFile); return err == nil })
	// Follow returns at once although a start hangs; the newer role supersedes the pending
	// start of b.
	r.m.Follow(vrrp.StateBackup)

	e := r.waitEvent(t, "start-failed", "service a ")
	if !strings.Contains(e.Description, "timed out after 300ms; its process group was killed") || !strings.Contains(e.Description, "hanging now") {
		t.Errorf("start-failed event does not say it timed out with its output: %q", e.Description)
	}
	if e.Priority != PriorityWarning {
		t.Errorf("start-failed priority %d, want warning", e.Priority)
	}
	r.waitEvent(t, "stopped", "service a ")
	if got := r.log(t); !equalWords(got, "start-a", "stop-b", "stop-a") {
		t.Errorf("commands ran %q, want start-a (hung), then the Backup role: stop-b stop-a", got)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	poll.Until(t, 5*time.Second, "the hung start's child to be killed with its group", func() bool { return processGone(pid) })
}

func TestServicesDaemonizingStartSucceeds(t *testing.T) {
	r := newSvcRig(t)
	pidFile := filepath.Join(r.dir, "pid")
	d := r.simpleService("pbx")
	// Like a daemon that forks without closing its inherited output: the start command
	// exits 0 at once while its child keeps stdout open.
	d.Start = []string{"sh", "-c", fmt.Sprintf("sleep 600 & echo $! > %s; echo forked", pidFile)}
	r.start(t, ServiceManagerConfig{Services: []ServiceConfig{d}})
	t.Cleanup(func() {
		b, _ := os.ReadFile(pidFile)
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	r.m.Follow(vrrp.StateMaster)
	e := r.waitEvent(t, "started", "service pbx")
	if !strings.Contains(e.Description, "exit status 0") || !strings.Contains(e.Description, "forked") {
		t.Errorf("started event %q", e.Description)
	}
	if s := r.status()[0]; s.State != ServiceRunning || s.LastError != "" {
		t.Errorf("status %+v", s)
	}
}

func TestServicesSupersede(t *testing.T) {
	r := newSvcRig(t)
	gate := filepath.Join(r.dir, "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	a := r.simpleService("a")
	a.Start = []string{"sh", "-c", fmt.Sprintf("echo start-a >> %s/log; read x < %s", r.dir, gate)}
	r.start(t, ServiceManagerConfig{Services: []ServiceConfig{a, r.simpleService("b"), r.simpleService("c")}})

	r.m.Follow(vrrp.StateMaster)
	poll.Until(t, 5*time.Second, "start-a to run", func() bool { return len(r.log(t)) == 1 })
	// Three roles while start-a waits: only the newest (Backup) is applied after it.
	r.m.Follow(vrrp.StateBackup)
	r.m.Follow(vrrp.StateMaster)
	r.m.Follow(vrrp.StateBackup)
	poll.Until(t, 5*time.Second, "the manager to pick the newest role up", func() bool {
		r.m.mu.Lock()
		defer r.m.mu.Unlock()
		return r.m.seq.role == vrrp.StateBackup
	})
	if err := os.WriteFile(gate, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.waitEvent(t, "stopped", "service a ")
	if got := r.log(t); !equalWords(got, "start-a", "stop-c", "stop-b", "stop-a") {
		t.Errorf("commands ran %q, want start-a finishing, then stop-c stop-b stop-a", got)
	}
	if got := r.names(); !equalWords(got, "started a", "stopped c", "stopped b", "stopped a") {
		t.Errorf("events %q", got)
	}
}

func TestServicesFailedStartContinuesAndIsUnhealthy(t *testing.T) {
	r := newSvcRig(t)
	health := make(chan string, 10)
	bad := r.simpleService("db")
	bad.Start = []string{"sh", "-c", "echo 'Job for db.service failed' >&2; exit 3"}
	r.start(t, ServiceManagerConfig{
		Services: []ServiceConfig{bad, r.simpleService("pbx")},
		OnHealth: func(ok bool, why string) { health <- fmt.Sprint(ok, " ", why) },
	})
	r.m.Follow(vrrp.StateMaster)
	e := r.waitEvent(t, "start-failed", "service db ")
	if !strings.Contains(e.Description, "exit status 3") || !strings.Contains(e.Description, "Job for db.service failed") {
		t.Errorf("start-failed message %q lacks the exit status or the output", e.Description)
	}
	r.waitEvent(t, "unhealthy", "service db failed to start")
	r.waitEvent(t, "started", "service pbx ")
	if got := <-health; got != "false service db failed to start" {
		t.Errorf("OnHealth got %q", got)
	}
	st := r.status()
	if st[0].State != ServiceFailed || *st[0].LastExit != 3 || st[0].Healthy || st[0].LastOutputTail != "Job for db.service failed" {
		t.Errorf("failed service status %+v", st[0])
	}
	if st[1].State != ServiceRunning || !st[1].Healthy {
		t.Errorf("next service status %+v", st[1])
	}
	if ok, why := r.m.Healthy(); ok || why != "service db failed to start" {
		t.Errorf("Healthy() = %v, %q", ok, why)
	}
}

func TestServicesHealthCheck(t *testing.T) {
	r := newSvcRig(t)
	okFile := filepath.Join(r.dir, "ok")
	if err := os.WriteFile(okFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	health := make(chan string, 10)
	pbx := r.simpleService("asterisk")
	pbx.Check = []string{"sh", "-c", fmt.Sprintf("test -e %s || { echo 'Unable to connect to remote asterisk'; exit 1; }", okFile)}
	pbx.CheckInterval = 20 * time.Millisecond
	pbx.Fall, pbx.Rise = 2, 2
	r.start(t, ServiceManagerConfig{
		Services: []ServiceConfig{pbx},
		OnHealth: func(ok bool, why string) { health <- fmt.Sprint(ok, " ", why) },
	})
	r.m.Follow(vrrp.StateMaster)
	r.waitEvent(t, "started", "service asterisk")
	poll.Until(t, 5*time.Second, "a passing check", func() bool { return r.status()[0].LastCommand == "check" })

	if err := os.Remove(okFile); err != nil {
		t.Fatal(err)
	}
	e := r.waitEvent(t, "check-failed", "(1 of 2)")
	if !strings.Contains(e.Description, "Unable to connect to remote asterisk") {
		t.Errorf("check-failed message %q lacks the output", e.Description)
	}
	r.waitEvent(t, "check-failed", "(2 of 2)")
	r.waitEvent(t, "unhealthy", "unhealthy: service asterisk failed")
	if got := <-health; got != "false service asterisk failed" {
		t.Errorf("OnHealth got %q", got)
	}
	poll.Until(t, 5*time.Second, "more failed checks counted", func() bool { return r.status()[0].ConsecutiveFailures >= 3 })
	if s := r.status()[0]; s.Healthy || s.Reason != "service asterisk failed" || s.State != ServiceRunning {
		t.Errorf("status while unhealthy: %+v", s)
	}

	if err := os.WriteFile(okFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r.waitEvent(t, "healthy", "service asterisk is healthy again (2 checks in a row passed)")
	if got := <-health; got != "true " {
		t.Errorf("OnHealth got %q", got)
	}
	for _, e := range r.seen {
		if e.Name == "check-failed" && strings.Contains(e.Description, "(3 of 2)") {
			t.Errorf("failed checks reported after the verdict fell: %q", e.Description)
		}
	}

	// Checks stop with the Master role.
	r.m.Follow(vrrp.StateBackup)
	r.waitEvent(t, "stopped", "service asterisk")
	r.m.mu.Lock()
	active := r.m.trackers[0].active
	r.m.mu.Unlock()
	if active {
		t.Error("the check still runs on the Backup")
	}
}

func TestServicesNotify(t *testing.T) {
	r := newSvcRig(t)
	out := filepath.Join(r.dir, "notify")
	r.start(t, ServiceManagerConfig{
		Services: []ServiceConfig{r.simpleService("a")},
		Notify:   []string{"sh", "-c", fmt.Sprintf(`echo "$*" >> %s; [ "$3" != FAULT ]`, out), "notify"},
		// keepalived's instance name and priority, as the appliance passes them.
		NotifyInstance: "VI_18", Priority: 100,
	})
	read := func() string { b, _ := os.ReadFile(out); return string(b) }
	r.m.Follow(vrrp.StateMaster)
	poll.Until(t, 5*time.Second, "notify MASTER", func() bool { return read() == "INSTANCE VI_18 MASTER 100\n" })
	if got := r.log(t); !equalWords(got, "start-a") {
		t.Errorf("notify ran before the services were applied: log %q", got)
	}
	r.m.Follow(vrrp.StateBackup)
	poll.Until(t, 5*time.Second, "notify BACKUP", func() bool { return strings.HasSuffix(read(), "INSTANCE VI_18 BACKUP 100\n") })
	r.m.Follow(vrrp.StateInitialize)
	e := r.waitEvent(t, "notify-failed", "notify FAULT failed")
	if !strings.Contains(e.Description, "exit status 1") {
		t.Errorf("notify-failed message %q", e.Description)
	}
}

func TestServicesHungNotifyDelaysNothing(t *testing.T) {
	r := newSvcRig(t)
	r.start(t, ServiceManagerConfig{
		Services: []ServiceConfig{r.simpleService("a")},
		Notify:   []string{"sh", "-c", "sleep 600"},
		// Long enough to be hung for the whole test.
		NotifyTimeout: time.Hour,
	})
	r.m.Follow(vrrp.StateMaster)
	r.waitEvent(t, "started", "service a")
	r.m.Follow(vrrp.StateBackup)
	r.waitEvent(t, "stopped", "service a")
	r.m.Follow(vrrp.StateMaster)
	r.waitEvent(t, "started", "service a")
}

func TestServicesStoppedWhenRunEnds(t *testing.T) {
	r := newSvcRig(t)
	r.start(t, ServiceManagerConfig{Services: []ServiceConfig{r.simpleService("a"), r.simpleService("b")}})
	r.m.Follow(vrrp.StateMaster)
	r.waitEvent(t, "started", "service b")
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil // for the cleanup
	if got := r.log(t); !equalWords(got, "start-a", "start-b", "stop-b", "stop-a") {
		t.Errorf("commands ran %q, want the services stopped in reverse order when Run ends", got)
	}
}

func TestServicesUntouchedWithoutARole(t *testing.T) {
	r := newSvcRig(t)
	r.start(t, ServiceManagerConfig{Services: []ServiceConfig{r.simpleService("a")}})
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil
	if got := r.log(t); len(got) != 0 {
		t.Errorf("a manager never given a role ran %q", got)
	}
	if s := r.status()[0]; s.State != ServiceUnknown || s.LastExit != nil {
		t.Errorf("status %+v, want unknown with no command run", s)
	}
}

func TestServicesDraining(t *testing.T) {
	drain := func(script string) ServiceConfig {
		return ServiceConfig{Name: "x", Start: []string{"true"}, Stop: []string{"true"},
			DrainCheck: []string{"sh", "-c", script}, Timeout: 5 * time.Second}
	}
	tests := []struct {
		name  string
		svcs  []ServiceConfig
		calls int
		err   error
	}{
		{"no call", []ServiceConfig{drain("echo 0 active calls; exit 0")}, 0, nil},
		{"calls counted from the output", []ServiceConfig{drain("echo 3 active calls; exit 1")}, 3, nil},
		{"calls without a number", []ServiceConfig{drain("exit 1")}, 1, nil},
		{"summed over services", []ServiceConfig{drain("echo 2; exit 1"), drain("exit 0"), drain("echo 1 call; exit 1")}, 3, nil},
		{"other exit status is an error", []ServiceConfig{drain("echo 'asterisk not running'; exit 2")}, 0, ErrDrainCheck},
		{"no drain_check", []ServiceConfig{{Name: "x", Start: []string{"true"}, Stop: []string{"true"}}}, 0, ErrNoDrainCheck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewServiceManager(ServiceManagerConfig{Services: tt.svcs}, nil)
			if err != nil {
				t.Fatal(err)
			}
			calls, err := m.Draining(context.Background())
			if calls != tt.calls || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("Draining = %d, %v; want %d, %v", calls, err, tt.calls, tt.err)
			}
		})
	}
}

func TestServicesDrainingTimeout(t *testing.T) {
	m, err := NewServiceManager(ServiceManagerConfig{Services: []ServiceConfig{{Name: "pbx",
		Start: []string{"true"}, Stop: []string{"true"}, DrainCheck: []string{"sleep", "600"},
		Timeout: 200 * time.Millisecond}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Draining(context.Background())
	if !errors.Is(err, ErrDrainCheck) || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("Draining with a hung drain_check = %v, want a timeout wrapping ErrDrainCheck", err)
	}
}

func TestNewServiceManagerMissingProgram(t *testing.T) {
	_, err := NewServiceManager(ServiceManagerConfig{
		Services: []ServiceConfig{{Name: "a", Start: []string{"true"}, Stop: []string{"true"},
			Check: []string{"/nonexistent/check-asterisk"}}},
		Notify: []string{"redundantd-no-such-notify"},
	}, nil)
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "service[0].check") || !strings.Contains(err.Error(), "redundancy.notify") {
		t.Errorf("NewServiceManager with missing programs = %v, want both keys named", err)
	}
}

func TestServiceStatusJSON(t *testing.T) {
	exit := 3
	b, err := json.Marshal([]ServiceStatus{{Name: "asterisk", State: ServiceFailed, LastCommand: "start",
		LastExit: &exit, LastOutputTail: "boom", Healthy: false, Reason: "service asterisk failed to start",
		ConsecutiveFailures: 0}, {Name: "db", State: ServiceUnknown}})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"asterisk","state":"failed","last_command":"start","last_exit":3,"last_output_tail":"boom",` +
		`"healthy":false,"reason":"service asterisk failed to start","consecutive_failures":0},` +
		`{"name":"db","state":"unknown","last_exit":null,"last_output_tail":"","healthy":false,"consecutive_failures":0}]`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	// A client decodes the answer into the same types (redundantctl status).
	var back []ServiceStatus
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 2 || back[0].State != ServiceFailed || back[1].State != ServiceUnknown {
		t.Errorf("decoding the status back: %+v, %v", back, err)
	}
	var st ServiceState
	if err := json.Unmarshal([]byte(`"sleeping"`), &st); !errors.Is(err, ErrServiceState) {
		t.Errorf("an unknown state word: %v, want ErrServiceState", err)
	}
}

func TestTailBuffer(t *testing.T) {
	var lines []string
	for i := range 100 {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name  string
		write []string
		want  string
	}{
		{"empty", nil, ""},
		{"trailing newline trimmed", []string{"done\n\n"}, "done"},
		{"last 20 lines", []string{strings.Join(lines, "\n") + "\n"}, strings.Join(lines[80:], "\n")},
		{"long line cut to the byte limit", []string{long}, long[:tailBytes]},
		{"partial first line dropped after a cut", []string{long, "\nlast\n"}, "last"},
		{"many small writes", strings.Split(strings.Repeat("ab\n", 3000), ""), strings.TrimSpace(strings.Repeat("ab\n", 20))},
		{"invalid UTF-8 replaced", []string{"bad \xff byte"}, "bad \uFFFD byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tb tailBuffer
			for _, w := range tt.write {
				tb.Write([]byte(w))
			}
			if got := tb.String(); got != tt.want {
				t.Errorf("tail = %q (%d bytes), want %q", got[:min(len(got), 80)], len(got), tt.want[:min(len(tt.want), 80)])
			}
		})
	}
}

// TestServicesAsAppliancePart runs the manager as the appliance will: a Part told each role
// change by the appliance, recording into its event log, shown in its status. A hung start
// delays neither another part nor the next role.
func TestServicesAsAppliancePart(t *testing.T) {
	r := newSvcRig(t)
	gate := filepath.Join(r.dir, "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	pbx := r.simpleService("asterisk")
	pbx.Start = []string{"sh", "-c", fmt.Sprintf("echo start-asterisk >> %s/log; read x < %s", r.dir, gate)}
	var a *Appliance
	sm, err := NewServiceManager(ServiceManagerConfig{Services: []ServiceConfig{pbx}},
		func(e Event) Event { return a.record(e) })
	if err != nil {
		t.Fatal(err)
	}
	other := &recordingFollower{got: make(chan struct{}, 8)}
	a, fr := newTestAppliance(t, sm, other)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	<-fr.ran

	fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateInitialize, To: vrrp.StateMaster})
	<-other.got
	poll.Until(t, 5*time.Second, "the start to hang", func() bool { return len(r.log(t)) == 1 })
	// The other part hears the next role although the PBX's start still hangs.
	fr.cfg.OnEvent(vrrp.Event{From: vrrp.StateMaster, To: vrrp.StateBackup})
	<-other.got
	if st := a.Status().Parts["services"].([]ServiceStatus); st[0].State != ServiceStarting {
		t.Errorf("services status while the start hangs: %+v", st)
	}
	if err := os.WriteFile(gate, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the Backup role applied", func() bool { return len(eventsMatching(a, AppService, "stopped")) == 1 })
	if n := len(eventsMatching(a, AppService, "started")); n != 1 {
		t.Errorf("%d started events in the appliance's log, want 1", n)
	}
	if got := r.log(t); !equalWords(got, "start-asterisk", "stop-asterisk") {
		t.Errorf("commands ran %q", got)
	}
	if st := a.Status().Parts["services"].([]ServiceStatus); st[0].State != ServiceStopped {
		t.Errorf("services status after Backup: %+v", st)
	}
}

// A Master whose interface fails leaves the protocol (Initialize): its services stop as on
// becoming Backup, and start again only when it is Master again.
func TestServicesStopOnFault(t *testing.T) {
	r := newSvcRig(t)
	r.start(t, ServiceManagerConfig{Services: []ServiceConfig{r.simpleService("a")}})
	r.m.Follow(vrrp.StateMaster)
	r.waitEvent(t, "started", "service a")
	r.m.Follow(vrrp.StateInitialize)
	r.waitEvent(t, "stopped", "service a")
	r.m.Follow(vrrp.StateBackup)
	poll.Until(t, 5*time.Second, "the Backup role applied", func() bool { return r.m.Applied(vrrp.StateBackup) })
	if got := r.log(t); !equalWords(got, "start-a stop-a") {
		t.Errorf("service log %q; want one start and one stop", got)
	}
}
