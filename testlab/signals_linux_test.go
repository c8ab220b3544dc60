package testlab

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
)

// lastEvents returns the names of the events redundantd's API lists in node n.
func lastEvents(t *testing.T, n *Node) []string {
	t.Helper()
	resp, err := n.HTTPClient().Get("http://" + APIAddr + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var evs []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal(b, &evs); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %s: %v", b, err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Name+": "+e.Description)
	}
	return out
}

func hasEvent(evs []string, prefix string) bool {
	for _, e := range evs {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

// TestSignalsNeverKillTheDaemon reproduces issue 12 item 2: SIGHUP killed redundantd
// silently (exit 129, no priority-0 advert) and left the virtual IP behind, held by both
// nodes once the peer took over. Now SIGHUP reloads: a new priority is applied at once, a
// change that needs a restart is reported and kept, a bad file is refused; SIGUSR1 and
// SIGUSR2 are harmless. Throughout, the Master stays Master and the Backup never takes over.
func TestSignalsNeverKillTheDaemon(t *testing.T) {
	t.Parallel()
	l, ctx, tl := recordedLab(t, 60*time.Second)
	m, b := pair(t, ctx, l, tl, Redundantd, Redundantd, VRRPConfig{Priority: 150})
	conf := filepath.Join(m.Dir, "redundantd.toml")
	pid := m.Proc().Pid()

	// A new priority and a new group id (which needs a restart) in the file.
	cfg := m.Config
	cfg.Priority, cfg.VRID = 180, 52
	if err := os.WriteFile(conf, []byte(RedundantdTOML(m.Node, cfg, filepath.Join(m.Dir, "state"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Proc().Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st Status
	var err error
	if perr := poll.Context(wctx, 20*time.Millisecond, func() bool {
		st, err = m.Node.Status(ctx)
		return err == nil && st.Priority == 180
	}); perr != nil {
		t.Fatalf("priority not reloaded: %+v, %v", st, err)
	}
	if st.State != "master" || st.GroupID != 51 {
		t.Fatalf("after the reload: state %s, group %d; want master of group 51 (the group id needs a restart)", st.State, st.GroupID)
	}
	evs := lastEvents(t, m.Node)
	if !hasEvent(evs, "config reloaded: configuration reloaded; applied: redundancy.priority") ||
		!hasEvent(evs, "needs a restart: changed in the file but kept as running until a restart: redundancy.group_id") {
		t.Errorf("events after the reload:\n%s", strings.Join(evs, "\n"))
	}

	// A bad file is refused; the running configuration stays.
	if err := os.WriteFile(conf, []byte("[node]\ninterface = 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
		if err := m.Proc().Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if err := poll.Context(rctx, 20*time.Millisecond, func() bool { return hasEvent(lastEvents(t, m.Node), "reload refused") }); err != nil {
		t.Fatalf("no reload refused event:\n%s", strings.Join(lastEvents(t, m.Node), "\n"))
	}
	if _, err := m.Proc().WaitOutput(ctx, "status"); err != nil {
		t.Errorf("SIGUSR1/SIGUSR2 did not log the status: %v", err)
	}
	// Two advert intervals later: the same process, still the only Master.
	settled := time.Now()
	for i := range 2 {
		if _, err := tl.WaitAdvert(ctx, settled.Add(time.Duration(i)*time.Second), "a Master advert", From(m.Node, 51)); err != nil {
			t.Fatal(err)
		}
	}
	if exited, _ := m.Proc().Exited(); exited || m.Proc().Pid() != pid {
		t.Fatalf("the daemon exited after the signals:\n%s", tail(m.Proc().Output(), 20))
	}
	if st, err := m.Node.Status(ctx); err != nil || st.State != "master" || st.Priority != 180 {
		t.Errorf("after the signals: %+v, %v", st, err)
	}
	assertSoleMaster(t, ctx, l, tl, m, b)
}
