package berofos_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/redundantd/redundantd/berofos"
	"github.com/redundantd/redundantd/testlab/fossim"
	"github.com/redundantd/redundantd/testlab/poll"
)

// startSim runs a simulated berofos on loopback ephemeral ports and returns the device entry
// that reaches it.
func startSim(t testing.TB, name string, cfg fossim.Config) (*fossim.Sim, berofos.Device) {
	t.Helper()
	return fossim.StartLoopback(t, name, cfg)
}

func newClient(t testing.TB, timeout time.Duration) *berofos.Client {
	c := berofos.NewClient(berofos.ClientOptions{Timeout: timeout, Retransmit: 50 * time.Millisecond})
	t.Cleanup(c.Close)
	return c
}

// syslogSink receives the simulator's syslog datagrams on loopback.
type syslogSink struct {
	mu   sync.Mutex
	msgs []string
	port int
}

func newSyslogSink(t *testing.T) *syslogSink {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &syslogSink{port: pc.LocalAddr().(*net.UDPAddr).Port}
	go func() {
		buf := make([]byte, 1024)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, string(buf[:n]))
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *syslogSink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

func TestClientReadSetAndSyslog(t *testing.T) {
	sink := newSyslogSink(t)
	sim, dev := startSim(t, "fos1", fossim.Config{Settings: map[string]string{
		"syslog": "1", "slgip": "127.0.0.1", "slgpt": fmt.Sprint(sink.port), "modedef": "0", "scenario": "1",
	}})
	c := newClient(t, time.Second)
	ctx := t.Context()
	cfg, err := c.ReadConfig(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range cfg.Values() {
		got[e.Key] = e.Value
	}
	for k, want := range map[string]string{"mode": "0", "modedef": "0", "scenario": "1", "syslog": "1", "pwd": "0", "wdogstate": "0", "address": "192.0.2.10"} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	if _, err := c.SetMode(ctx, dev, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(ctx, dev, "hostname", "fos one&two"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(ctx, dev, "power2", "yes"); err != nil {
		t.Fatal(err)
	}
	if v, _ := sim.Get("hostname"); v != "fos one&two" {
		t.Errorf("hostname on the device %q", v)
	}
	if sim.Mode() != 1 {
		t.Errorf("device mode %d, want 1", sim.Mode())
	}
	var queries []string
	for _, s := range sim.Sets() {
		queries = append(queries, s.Query)
	}
	if diff := cmp.Diff([]string{"cmd=4&mode=1", "cmd=3&dn=fos%20one%26two", "cmd=5&p=1&s=1"}, queries); diff != "" {
		t.Errorf("set requests (-want +got):\n%s", diff)
	}
	want := []string{"<134>berofos:00: Powerup", "<134>berofos:12: Relay Mode changed: A-B,C-D", "<134>berofos:32: PW2 Mode changed: on"}
	poll.Until(t, 2*time.Second, "syslog messages", func() bool { return len(sink.got()) >= len(want) })
	if diff := cmp.Diff(want, sink.got()); diff != "" {
		t.Errorf("syslog (-want +got):\n%s", diff)
	}
	if _, err := c.Set(ctx, dev, "wdogstate", "1"); !errors.Is(err, berofos.ErrNotWritable) {
		t.Errorf("set of a read-only key: %v", err)
	}
	if _, err := c.Set(ctx, dev, "apwd", "secret"); err != nil {
		t.Errorf("set apwd (not verifiable): %v", err)
	}
}

func TestClientPassword(t *testing.T) {
	_, dev := startSim(t, "fos1", fossim.Config{Password: "secret"})
	c := newClient(t, time.Second)
	for i := range 2 { // the second time credentials go out up front
		if _, err := c.SetMode(t.Context(), dev, 0); err != nil {
			t.Fatalf("round %d with the right password: %v", i, err)
		}
	}
	wrong := dev
	wrong.Login = "admin:wrong"
	_, err := newClient(t, time.Second).ReadConfig(t.Context(), wrong)
	if !errors.Is(err, berofos.ErrAuth) || !strings.Contains(err.Error(), "wrong user or password") {
		t.Errorf("wrong password: %v", err)
	}
	// With credentials cached for the host, a wrong password is still caught.
	if _, err := c.ReadConfig(t.Context(), wrong); !errors.Is(err, berofos.ErrAuth) {
		t.Errorf("wrong password after a good one: %v", err)
	}
	none := dev
	none.Login = ""
	if _, err := newClient(t, time.Second).ReadConfig(t.Context(), none); !errors.Is(err, berofos.ErrAuth) || !strings.Contains(err.Error(), "no login") {
		t.Errorf("no login: %v", err)
	}
}

func TestClientFailures(t *testing.T) {
	sim, dev := startSim(t, "fos1", fossim.Config{})
	// Requests that must get an answer are made with a timeout no loaded machine reaches (c);
	// those whose right outcome is no answer at all, with a short one (slow), which they
	// wait out.
	c := newClient(t, 10*time.Second)
	slow := newClient(t, 300*time.Millisecond)
	ctx := t.Context()

	sim.SetCRLF(true)
	cfg, err := c.ReadConfig(ctx, dev)
	if err != nil {
		t.Fatalf("CRLF config.txt: %v", err)
	}
	if m, _ := cfg.Mode(); m != 1 {
		t.Errorf("CRLF config.txt: mode %d", m)
	}
	if _, err := c.SetMode(ctx, dev, 0); err != nil {
		t.Errorf("set against CRLF config.txt: %v", err)
	}
	sim.SetCRLF(false)

	sim.SetGarbage(true)
	if _, err := c.ReadConfig(ctx, dev); !errors.Is(err, berofos.ErrNoMagic) {
		t.Errorf("garbage answer: %v, want ErrNoMagic", err)
	}
	if err := slow.Kick(ctx, dev); !errors.Is(err, berofos.ErrNoReply) {
		t.Errorf("garbage GBL4 reply: %v, want ErrNoReply", err)
	}
	sim.SetGarbage(false)

	sim.SetIgnoreSets(true)
	if _, err := c.SetMode(ctx, dev, 1); !errors.Is(err, berofos.ErrNotApplied) {
		t.Errorf("set that does not take: %v, want ErrNotApplied", err)
	}
	sim.SetIgnoreSets(false)

	// A device that answers only after an hour: the client gives up at its timeout with an
	// error that says so, and does not wait for the answer.
	const delay = time.Hour
	sim.SetDelay(delay)
	start := time.Now()
	_, err = slow.ReadConfig(ctx, dev)
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Errorf("slow device: %v", err)
	}
	if err := slow.Ping(ctx, dev); !errors.Is(err, berofos.ErrNoReply) {
		t.Errorf("slow GBL4 reply: %v, want ErrNoReply", err)
	}
	if el := time.Since(start); el >= delay {
		t.Errorf("slow device held the client %v, the device's whole delay", el)
	}
	sim.SetDelay(0)

	sim.SetDown(true)
	if _, err := slow.ReadConfig(ctx, dev); err == nil {
		t.Error("device down: no error")
	}
	if err := slow.Kick(ctx, dev); !errors.Is(err, berofos.ErrNoReply) {
		t.Errorf("device down, kick: %v", err)
	}
	sim.SetDown(false)

	// Cancelling the caller's context ends a request at once.
	sim.SetDelay(time.Hour)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.ReadConfig(cctx, dev); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled request: %v", err)
	}
	sim.SetDelay(0)

	// Nothing listens: connection refused.
	closed := berofos.Device{Name: "gone", Host: refusingAddr(t)}
	if _, err := c.ReadConfig(ctx, closed); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("closed port: %v", err)
	}
}

// refusingAddr returns a loopback address held by a socket that is bound but never listens:
// a connection to it is refused, and no other process can take the port meanwhile (a port
// closed after listening could be handed out again).
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

func TestGBL4AgainstSim(t *testing.T) {
	sim, dev := startSim(t, "fos1", fossim.Config{})
	c := newClient(t, 300*time.Millisecond)
	ctx := t.Context()
	host, _, _ := net.SplitHostPort(dev.Host)
	replies, err := c.Scan(ctx, host, dev.UDPPort, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 1 {
		t.Fatalf("scan: %d replies", len(replies))
	}
	r := replies[0]
	_, port, _ := net.SplitHostPort(dev.Host)
	if r.MAC.String() != "00:19:32:00:12:1d" || r.IP.String() != "192.0.2.10" || r.Firmware() != "1.53" || fmt.Sprint(r.HTTPPort) != port || r.DevMode != 0 {
		t.Errorf("scan reply %+v", r)
	}
	if err := c.Kick(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if sim.Kicks() != 1 {
		t.Errorf("device counted %d kicks", sim.Kicks())
	}
	other := dev
	other.MAC = net.HardwareAddr{0, 0x19, 0x32, 0, 0, 0x99}
	if err := c.Kick(ctx, other); !errors.Is(err, berofos.ErrNoReply) {
		t.Errorf("kick for another MAC: %v, want ErrNoReply", err)
	}
	nc := berofos.Netconf{IP: mustAddr("192.0.2.20"), Netmask: mustAddr("255.255.255.0"), Gateway: mustAddr("192.0.2.1"), HTTPPort: 80}
	if err := c.Netconf(ctx, dev, nc); !errors.Is(err, berofos.ErrNoReply) || !strings.Contains(err.Error(), "flash mode") {
		t.Errorf("netconf in operational mode: %v", err)
	}
	if _, err := c.Scan(ctx, host, dev.UDPPort+1, 200*time.Millisecond); err != nil {
		t.Errorf("scan of a silent port: %v (want no replies, no error)", err)
	}
}

func TestFlashModeAgainstSim(t *testing.T) {
	sim, dev := startSim(t, "fos1", fossim.Config{FlashMode: true})
	c := newClient(t, 300*time.Millisecond)
	ctx := t.Context()
	host, _, _ := net.SplitHostPort(dev.Host)
	replies, err := c.Scan(ctx, host, dev.UDPPort, time.Second)
	if err != nil || len(replies) != 1 || replies[0].DevMode != berofos.DevModeFlash {
		t.Fatalf("scan in flash mode: %v %+v", err, replies)
	}
	if _, err := c.ReadConfig(ctx, dev); !errors.Is(err, berofos.ErrHTTPStatus) {
		t.Errorf("HTTP in flash mode: %v", err)
	}
	nc := berofos.Netconf{IP: mustAddr("192.0.2.20"), Netmask: mustAddr("255.255.255.0"), Gateway: mustAddr("192.0.2.1"), HTTPPort: 8080}
	if err := c.Netconf(ctx, dev, nc); err != nil {
		t.Fatal(err)
	}
	image := bytes.Repeat([]byte("firmware 1.54 "), 100) // 1400 bytes, 3 pages
	var progress []int
	if err := c.Flash(ctx, dev, image, func(done, total int) { progress = append(progress, done*10+total) }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{13, 23, 33}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	flashed := sim.FlashedImage()
	if len(flashed) != 3*berofos.PageSize || !bytes.Equal(flashed[:len(image)], image) {
		t.Errorf("device holds %d bytes, not the image", len(flashed))
	}
	if err := c.Reset(ctx, dev); err != nil {
		t.Fatal(err)
	}
	replies, err = c.Scan(ctx, host, dev.UDPPort, time.Second)
	if err != nil || len(replies) != 1 || replies[0].DevMode != berofos.DevModeOperational || replies[0].IP.String() != "192.0.2.20" || replies[0].HTTPPort != 8080 {
		t.Fatalf("scan after reset: %v %+v", err, replies)
	}
}
