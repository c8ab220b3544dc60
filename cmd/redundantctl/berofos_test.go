package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/redundantd/redundantd/berofos"
	"github.com/redundantd/redundantd/testlab/fossim"
)

type simDev struct {
	sim     *fossim.Sim
	dev     berofos.Device
	udpPort int
}

// startSims runs n simulated devices on loopback and writes a bnfos.conf naming them.
func startSims(t *testing.T, n int, cfg func(i int) fossim.Config) ([]simDev, string) {
	t.Helper()
	var out []simDev
	var devs []berofos.Device
	for i := range n {
		c := cfg(i)
		if c.MAC == nil {
			c.MAC = net.HardwareAddr{0, 0x19, 0x32, 0, 0x12, byte(0x1D + i)}
		}
		sim, d := fossim.StartLoopback(t, fmt.Sprintf("fos%d", i+1), c)
		udpPort := d.UDPPort
		d.UDPPort = 0 // bnfos.conf has no port key
		devs = append(devs, d)
		out = append(out, simDev{sim: sim, dev: d, udpPort: udpPort})
	}
	conf := filepath.Join(t.TempDir(), "bnfos.conf")
	if err := berofos.WriteConf(conf, devs); err != nil {
		t.Fatal(err)
	}
	return out, conf
}

func ctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = runBerofos(t.Context(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestBerofosMasterSlave(t *testing.T) {
	sims, conf := startSims(t, 2, func(i int) fossim.Config {
		return fossim.Config{Password: []string{"", "secret"}[i], Settings: map[string]string{"modedef": "0"}}
	})
	code, out, errOut := ctl(t, "master", "-conf", conf)
	if code != 0 {
		t.Fatalf("master: exit %d\n%s%s", code, out, errOut)
	}
	want := "fos1: switched to mode 1 (A-B), confirmed\nfos2: switched to mode 1 (A-B), confirmed\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("master output (-want +got):\n%s", diff)
	}
	for i, s := range sims {
		if s.sim.Mode() != 1 {
			t.Errorf("fos%d mode %d", i+1, s.sim.Mode())
		}
	}
	code, out, _ = ctl(t, "master", "-conf", conf)
	if code != 0 || !strings.Contains(out, "fos1: already in mode 1") || len(sims[0].sim.Sets()) != 1 {
		t.Errorf("second master: exit %d, %q, %d sets", code, out, len(sims[0].sim.Sets()))
	}
	// fos2 does not take the set: slave fails with a non-zero exit, fos1 still switches.
	sims[1].sim.SetIgnoreSets(true)
	code, out, errOut = ctl(t, "slave", "-conf", conf, "-json")
	if code != 1 {
		t.Errorf("slave with a stuck device: exit %d, want 1", code)
	}
	var res []struct {
		Device  string
		Mode    int
		Changed bool
		OK      bool
		Error   string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-json output %q: %v", out, err)
	}
	if len(res) != 2 || !res[0].OK || !res[0].Changed || res[0].Mode != 0 || res[1].OK || !strings.Contains(res[1].Error, "did not take") {
		t.Errorf("slave results %+v (stderr %q)", res, errOut)
	}
	if sims[0].sim.Mode() != 0 || sims[1].sim.Mode() != 1 {
		t.Errorf("modes %d %d", sims[0].sim.Mode(), sims[1].sim.Mode())
	}
}

func TestBerofosGetSetShowKick(t *testing.T) {
	sims, conf := startSims(t, 2, func(i int) fossim.Config { return fossim.Config{} })
	s := sims[1]
	udp := fmt.Sprint(s.udpPort)
	code, out, errOut := ctl(t, "set", "-conf", conf, "-f", "fos2", "mode=0", "hostname=lab fos")
	if code != 0 || out != "fos2: mode=0 (confirmed)\nfos2: hostname=lab fos (confirmed)\n" {
		t.Errorf("set: exit %d %q %q", code, out, errOut)
	}
	code, out, _ = ctl(t, "get", "mode", "-conf", conf, "-f", "fos2")
	if code != 0 || out != "0\n" {
		t.Errorf("get mode: exit %d %q", code, out)
	}
	code, out, _ = ctl(t, "get", "-conf", conf, "-f", "fos2", "-json", "mode", "hostname")
	if code != 0 || strings.Join(strings.Fields(out), "") != `{"hostname":"labfos","mode":"0"}` {
		t.Errorf("get -json: exit %d %q", code, out)
	}
	code, out, _ = ctl(t, "show", "-h", s.dev.Host)
	if code != 0 || !strings.Contains(out, "hostname   lab fos") || !strings.Contains(out, "wdogstate  0") {
		t.Errorf("show: exit %d\n%s", code, out)
	}
	code, _, errOut = ctl(t, "set", "-conf", conf, "mode=2")
	if code != 1 || !strings.Contains(errOut, "bad value for mode") {
		t.Errorf("set mode=2: exit %d %q", code, errOut)
	}
	code, _, errOut = ctl(t, "get", "-conf", conf, "-f", "fos9", "mode")
	if code != 1 || !strings.Contains(errOut, "no device [fos9]") {
		t.Errorf("get from a missing device: exit %d %q", code, errOut)
	}
	code, out, errOut = ctl(t, "kick", "-conf", conf, "-f", "fos2", "-udp-port", udp)
	if code != 0 || out != "fos2: watchdog kicked\n" || s.sim.Kicks() != 1 {
		t.Errorf("kick: exit %d %q %q, %d kicks", code, out, errOut, s.sim.Kicks())
	}
	// -c kicks until interrupted.
	ctx, cancel := context.WithCancel(t.Context())
	var o, e bytes.Buffer
	done := make(chan int)
	go func() {
		done <- runBerofos(ctx, []string{"kick", "-conf", conf, "-f", "fos2", "-udp-port", udp, "-c", "-w", "0.05"}, &o, &e)
	}()
	for s.sim.Kicks() < 4 {
		select {
		case <-done:
			t.Fatalf("kick -c returned: %q", e.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("kick -c exit %d", code)
	}
}

func TestBerofosScanWritesConf(t *testing.T) {
	sims, _ := startSims(t, 1, func(i int) fossim.Config { return fossim.Config{Password: "pw"} })
	s := sims[0]
	conf := filepath.Join(t.TempDir(), "bnfos.conf")
	// An existing entry for the same MAC keeps its login.
	if err := os.WriteFile(conf, []byte("[fos1]\nmac = 00:19:32:00:12:1D\nhost = 192.0.2.99\nlogin = admin:pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := ctl(t, "scan", "-x", "-h", "127.0.0.1", "-udp-port", fmt.Sprint(s.udpPort), "-conf", conf, "-t", "1")
	if code != 0 {
		t.Fatalf("scan: exit %d %q", code, errOut)
	}
	if !strings.Contains(out, "00:19:32:00:12:1D") || !strings.Contains(out, "192.0.2.10/255.255.255.0") || !strings.Contains(out, "password") {
		t.Errorf("scan output:\n%s", out)
	}
	devs, err := berofos.LoadConf(conf)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(s.dev.Host)
	want := []berofos.Device{{Name: "fos1", MAC: s.dev.MAC, Host: "192.0.2.10:" + port, Login: "admin:pw"}}
	if diff := cmp.Diff(want, devs); diff != "" {
		t.Errorf("bnfos.conf (-want +got):\n%s", diff)
	}
	// One named host that does not answer is a failure (exit 1), in both output formats;
	// the JSON answer is still the (empty) list.
	silent := fmt.Sprint(s.udpPort + 1)
	code, out, errOut = ctl(t, "scan", "-json", "-h", "127.0.0.1", "-udp-port", silent, "-t", "0.2")
	if code != 1 || strings.TrimSpace(out) != "[]" || !strings.Contains(errOut, "127.0.0.1: no berofos answered within 200ms") {
		t.Errorf("scan -json of a silent port: exit %d %q %q", code, out, errOut)
	}
	code, out, errOut = ctl(t, "scan", "-h", "127.0.0.1", "-udp-port", silent, "-t", "0.2")
	if code != 1 || out != "" || !strings.Contains(errOut, "no berofos answered") {
		t.Errorf("scan of a silent port: exit %d %q %q", code, out, errOut)
	}
}

// TestBerofosBadTimeouts: a timeout the client would silently replace (zero, negative) or
// cannot represent (huge, NaN) is a usage error, exit 2, before anything is sent.
func TestBerofosBadTimeouts(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"ping", "-h", "192.0.2.1", "-m", "00:19:32:00:12:1D", "-t", "0"}, "-t 0: want 0.01 to 60 seconds"},
		{[]string{"show", "-h", "192.0.2.1", "-t", "-1"}, "-t -1: want"},
		{[]string{"scan", "-h", "192.0.2.1", "-t", "1e300"}, "-t 1e+300: want"},
		{[]string{"get", "mode", "-h", "192.0.2.1", "-t", "61"}, "-t 61: want"},
		{[]string{"master", "-h", "192.0.2.1", "-t", "0.001"}, "-t 0.001: want"},
		{[]string{"scan", "-t", "NaN"}, "-t NaN: want"},
		{[]string{"scan", "-t", "+Inf"}, "-t +Inf: want"},
		{[]string{"kick", "-c", "-w", "0", "-h", "192.0.2.1", "-m", "00:19:32:00:12:1D"}, "-w 0: want 0.01 to 3600 seconds"},
		{[]string{"kick", "-c", "-w", "-2", "-h", "192.0.2.1", "-m", "00:19:32:00:12:1D"}, "-w -2: want"},
		{[]string{"kick", "-c", "-w", "1e12", "-h", "192.0.2.1", "-m", "00:19:32:00:12:1D"}, "-w 1e+12: want"},
	}
	for _, tt := range tests {
		code, out, errOut := ctl(t, tt.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tt.wantErr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 saying %q", tt.args, code, out, errOut, tt.wantErr)
		}
	}
}

func TestBerofosFlashModeCommands(t *testing.T) {
	sims, conf := startSims(t, 1, func(i int) fossim.Config { return fossim.Config{FlashMode: true} })
	s := sims[0]
	udp := fmt.Sprint(s.udpPort)
	base := []string{"-conf", conf, "-udp-port", udp, "-t", "0.5"}
	if code, out, errOut := ctl(t, append([]string{"ping"}, base...)...); code != 0 || out != "fos1: answered\n" {
		t.Errorf("ping: exit %d %q %q", code, out, errOut)
	}
	code, out, errOut := ctl(t, append([]string{"netconf", "-i", "192.0.2.30", "-n", "255.255.255.0", "-g", "192.0.2.1", "-d", "0", "-p", "8080"}, base...)...)
	if code != 0 || !strings.Contains(out, "network configuration written") {
		t.Errorf("netconf: exit %d %q %q", code, out, errOut)
	}
	fw := filepath.Join(t.TempDir(), "bnfos_v154.bin")
	image := []byte(strings.Repeat("berofos firmware ", 64)) // 1088 bytes: 3 pages
	if err := os.WriteFile(fw, image, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = ctl(t, append([]string{"flash", fw}, base...)...)
	if code != 0 || !strings.Contains(out, "firmware written") || !strings.Contains(errOut, "page 3 of 3 flashed") {
		t.Errorf("flash: exit %d %q %q", code, out, errOut)
	}
	if got := s.sim.FlashedImage(); len(got) != 3*berofos.PageSize || !bytes.Equal(got[:len(image)], image) {
		t.Errorf("device holds %d bytes, not the image", len(got))
	}
	if code, out, errOut = ctl(t, append([]string{"reset", "-json"}, base...)...); code != 0 || !strings.Contains(out, `"reset": true`) {
		t.Errorf("reset: exit %d %q %q", code, out, errOut)
	}
	code, out, _ = ctl(t, "scan", "-h", "127.0.0.1", "-udp-port", udp, "-json", "-t", "1")
	var found []struct {
		IP        string `json:"ip"`
		HTTPPort  int    `json:"http_port"`
		FlashMode bool   `json:"flash_mode"`
		DHCP      bool   `json:"dhcp"`
	}
	if err := json.Unmarshal([]byte(out), &found); err != nil || code != 0 || len(found) != 1 {
		t.Fatalf("scan after reset: exit %d %q %v", code, out, err)
	}
	if f := found[0]; f.IP != "192.0.2.30" || f.HTTPPort != 8080 || f.FlashMode || f.DHCP {
		t.Errorf("after netconf and reset: %+v", f)
	}
	if code, _, errOut = ctl(t, "netconf", "-i", "300.1.2.3", "-conf", conf); code != 1 || !strings.Contains(errOut, "-i") {
		t.Errorf("bad netconf address: exit %d %q", code, errOut)
	}
}
