package fossim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/redundantd/redundantd/berofos"
)

func get(t *testing.T, s *Sim, url, user, pass string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, url, nil)
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestConfigTxtAndSets(t *testing.T) {
	s, err := New(Config{Settings: map[string]string{"modedef": "0", "dhcp": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	code, body := get(t, s, "/config.txt", "", "")
	if code != 200 || !strings.HasPrefix(body, "bnfos_confmap_magic=0.1\n") || !strings.Contains(body, "\n3_dhcp=checked\n") ||
		!strings.Contains(body, "\n3_pwd=\n") || !strings.Contains(body, "\n4_mode=0\n") || !strings.Contains(body, "\n1_szd00=0\n") {
		t.Errorf("config.txt:\n%s", body)
	}
	for _, q := range []string{"/?cmd=1&sz=1", "/?cmd=4&mode=1", "/?cmd=5&p=0&s=1", "/?cmd=5&p=1&s=1", "/?cmd=5&p=1&s=0",
		"/?cmd=4&mode=7", "/?cmd=99&x=1", "/?cmd=6&wen=1", "/?cmd=6&wen=0"} {
		if code, _ := get(t, s, q, "", ""); code != 200 {
			t.Errorf("%s: %d", q, code)
		}
	}
	want := []string{"berofos:21: Szenario changed: Bypass", "berofos:12: Relay Mode changed: A-B,C-D",
		"berofos:30: PW1 Mode changed: on", "berofos:32: PW2 Mode changed: on", "berofos:33: PW2 Mode changed: off",
		"berofos:40: Wdog swithed: on", "berofos:41: Wdog swithed: off"}
	if diff := cmp.Diff(want, s.Messages()); diff != "" {
		t.Errorf("syslog (-want +got):\n%s", diff)
	}
	_, body = get(t, s, "/config.txt", "", "")
	cfg, err := berofos.ParseConfigTxt([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"mode": "1", "scenario": "1", "power1": "1", "power2": "0", "wdog": "0", "wdogstate": "0"} {
		if got, _ := cfg.Get(k); got != v {
			t.Errorf("%s = %s, want %s (mode=7 and cmd=99 must be ignored)", k, got, v)
		}
	}
	if code, _ := get(t, s, "/nothing", "", ""); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

func TestPasswordFlow(t *testing.T) {
	s, err := New(Config{Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/config.txt", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 401 || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic") {
		t.Errorf("no credentials: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if code, _ := get(t, s, "/config.txt", "admin", "wrong"); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
	if code, _ := get(t, s, "/config.txt", "admin", "secret"); code != 200 {
		t.Errorf("right password: %d", code)
	}
	// A new admin password takes effect at once.
	get(t, s, "/?cmd=3&apwd=other", "admin", "secret")
	if code, _ := get(t, s, "/config.txt", "admin", "other"); code != 200 {
		t.Errorf("new password: %d", code)
	}
}

func TestWatchdogFallback(t *testing.T) {
	s, err := New(Config{Settings: map[string]string{"wdogdef": "1", "wdogitime": "5", "modedef": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if v, _ := s.Get("wdogstate"); v != "1" {
		t.Fatalf("wdogstate at power-up %s, want 1 (wdogdef=1)", v)
	}
	s.Tick(start.Add(4 * time.Second))
	if s.Mode() != 1 {
		t.Fatal("fell back before wdogitime")
	}
	s.Tick(start.Add(6 * time.Second))
	if v, _ := s.Get("wdogstate"); v != "2" || s.Mode() != 0 {
		t.Errorf("after wdogitime: wdogstate %s, mode %d; want 2 and 0", v, s.Mode())
	}
	want := []string{"berofos:42: Wdog swithed: Failover (timeout)", "berofos:10: Relay Mode changed: A-D"}
	if diff := cmp.Diff(want, s.Messages()); diff != "" {
		t.Errorf("syslog (-want +got):\n%s", diff)
	}
	// Failure is sticky until the watchdog is switched on again.
	get(t, s, "/?cmd=4&mode=1", "", "")
	get(t, s, "/?cmd=6&wen=1", "", "")
	if v, _ := s.Get("wdogstate"); v != "1" || s.Mode() != 1 {
		t.Errorf("re-armed: wdogstate %s, mode %d", v, s.Mode())
	}
	if v, _ := s.Get("wdogrtime"); v != "5" && v != "4" {
		t.Errorf("wdogrtime %s right after arming with wdogitime 5", v)
	}
	// A reboot returns to the power-up defaults.
	get(t, s, "/?cmd=4&mode=0", "", "")
	s.Reboot()
	if s.Mode() != 1 {
		t.Errorf("after reboot mode %d, want modedef 1", s.Mode())
	}
}

func TestKnobs(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetCRLF(true)
	if _, body := get(t, s, "/config.txt", "", ""); !strings.Contains(body, "4_mode=1\r\n") {
		t.Errorf("CRLF config.txt:\n%q", body)
	}
	s.SetCRLF(false)
	s.SetGarbage(true)
	if _, err := berofos.ParseConfigTxt([]byte(func() string { _, b := get(t, s, "/config.txt", "", ""); return b }())); err == nil {
		t.Error("garbage answer parses")
	}
	s.SetGarbage(false)
	s.SetIgnoreSets(true)
	get(t, s, "/?cmd=4&mode=0", "", "")
	if s.Mode() != 1 || len(s.Sets()) != 1 {
		t.Errorf("ignored set: mode %d, %d sets recorded", s.Mode(), len(s.Sets()))
	}
	s.SetIgnoreSets(false)
	s.PressButton()
	if s.Mode() != 0 {
		t.Error("button did not toggle the relays")
	}
	f, err := New(Config{FlashMode: true})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, f, "/config.txt", "", ""); code != http.StatusServiceUnavailable {
		t.Errorf("HTTP in flash mode: %d", code)
	}
}

// FuzzHandleUDP feeds arbitrary datagrams to the simulator's GBL4 handler, in both modes: it
// must never panic, and every reply it sends must be a valid frame.
func FuzzHandleUDP(f *testing.F) {
	mac := []byte{0x00, 0x19, 0x32, 0x00, 0x12, 0x1D}
	for _, q := range []berofos.Request{{Cmd: berofos.CmdKick, MAC: mac}, {Cmd: berofos.CmdPing, MAC: mac}, {Cmd: berofos.CmdReset, MAC: mac}} {
		b, _ := q.MarshalBinary()
		f.Add(b, false)
		f.Add(b, true)
	}
	scan, _ := (&berofos.Frame{Cmd: berofos.CmdScan}).MarshalBinary()
	f.Add(scan, false)
	prep, _ := (&berofos.FlashPrepare{MAC: mac, Pages: 1}).MarshalBinary()
	f.Add(prep, true)
	f.Fuzz(func(t *testing.T, b []byte, flash bool) {
		s, err := New(Config{FlashMode: flash})
		if err != nil {
			t.Fatal(err)
		}
		if out := s.handleUDP(b); out != nil {
			var fr berofos.Frame
			if err := fr.UnmarshalBinary(out); err != nil {
				t.Fatalf("invalid reply % x: %v", out, err)
			}
		}
	})
}
