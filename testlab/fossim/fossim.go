// Package fossim is a simulated beroNet berofos for tests, benchmarks and the lab demo: the
// HTTP interface (config.txt, "/?cmd=N&..." sets, optional Basic-auth password protection),
// the GBL4 UDP management protocol (scan, ping, watchdog kick; netconf, reset and firmware
// flash in flash mode), the relays with the fallback and bypass scenarios, the power ports,
// the hardware watchdog that falls back to A-D and reports failure, and syslog messages in
// the device's "berofos:NN" format.
//
// Tests drive failure cases through knobs: slow answers, garbage answers, CRLF config.txt,
// sets that do not take, a device that is down, a reboot to the default mode, the front
// button. The servers run on listeners the caller opens, so a lab can run a Sim inside a
// network namespace.
package fossim

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redundantd/redundantd/berofos"
)

// Config describes the simulated device. Zero fields take the defaults noted.
type Config struct {
	MAC      net.HardwareAddr // default 00:19:32:00:12:1D
	Hostname string           // default "berofos"
	// IP, Netmask and Gateway are reported in config.txt and scan replies (defaults
	// 192.0.2.10, 255.255.255.0, 192.0.2.1).
	IP, Netmask, Gateway netip.Addr
	// HTTPPort is the port config.txt and scan replies report; 0 means the port of the
	// HTTP listener given to Run (80 when there is none). Network settings changed later
	// (address, port, dhcp over HTTP or netconf) are only stored and reported, as a device
	// applies them at its next boot; the simulator never rebinds its sockets.
	HTTPPort uint16
	// Firmware and bootloader versions (defaults 1.53 and 1.0).
	FWMajor, FWMinor, BootMajor, BootMinor uint8
	// FlashMode starts the device in flash mode: only GBL4 scan, ping, netconf, flash and
	// reset work; reset reboots it into operational mode.
	FlashMode bool
	// Password, when set, is the admin password (user "admin") and protection is on (pwd=1).
	Password string
	// Settings are initial values by bnfos key name ("scenario": "1", "modedef": "1",
	// "wdogdef": "1", "wdogitime": "60", "syslog": "1", "slgip": "127.0.0.1", ...). The
	// runtime state (mode, power1/2, wdog) starts from the *def keys unless given too.
	Settings map[string]string
	Logger   *slog.Logger
}

// SetRecord is one set request the device received.
type SetRecord struct {
	At    time.Time
	Query string
	Key   string // bnfos name
	Value string
}

// Sim is a simulated berofos. Its methods are safe for concurrent use.
type Sim struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	vals      map[string]string // config.txt key -> canonical value ("0"/"1", numbers, text)
	password  string
	flashMode bool
	wdDue     time.Time // watchdog deadline while wstate is on
	udp       net.PacketConn
	httpPort  uint16

	delay      time.Duration
	garbage    bool
	crlf       bool
	down       bool
	ignoreSets bool

	sets     []SetRecord
	kicks    int
	messages []string
	flash    struct {
		pages    int
		checksum uint8
		data     map[int][berofos.PageSize]byte
		image    []byte
	}
}

// Syslog codes of the user manual, appendix "Syslog Output".
var syslogText = map[int]string{
	0: "Powerup", 10: "Relay Mode changed: A-D", 11: "Relay Mode changed: A-B", 12: "Relay Mode changed: A-B,C-D",
	20: "Szenario changed: Fallback", 21: "Szenario changed: Bypass",
	30: "PW1 Mode changed: on", 31: "PW1 Mode changed: off", 32: "PW2 Mode changed: on", 33: "PW2 Mode changed: off",
	40: "Wdog swithed: on", 41: "Wdog swithed: off", 42: "Wdog swithed: Failover (timeout)", 43: "Wdog swithed: Failover (sticky)",
}

// checkbox keys are reported the way the web form renders them: "checked" or "".
var checkbox = map[string]bool{"3_dhcp": true, "3_pwd": true, "3_log": true, "2_wen": true, "2_as": true, "2_men": true}

// New returns a powered-up simulated device. It starts no goroutines; Run (or Serve* and
// Tick) makes it answer.
func New(cfg Config) (*Sim, error) {
	if cfg.MAC == nil {
		cfg.MAC = net.HardwareAddr{0x00, 0x19, 0x32, 0x00, 0x12, 0x1D}
	}
	if len(cfg.MAC) != 6 {
		return nil, fmt.Errorf("fossim: mac %v: want 6 bytes", cfg.MAC)
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "berofos"
	}
	def := func(a *netip.Addr, s string) {
		if !a.IsValid() {
			*a = netip.MustParseAddr(s)
		}
	}
	def(&cfg.IP, "192.0.2.10")
	def(&cfg.Netmask, "255.255.255.0")
	def(&cfg.Gateway, "192.0.2.1")
	for _, a := range []netip.Addr{cfg.IP, cfg.Netmask, cfg.Gateway} {
		if !a.Is4() {
			return nil, fmt.Errorf("fossim: address %v is not IPv4", a)
		}
	}
	if cfg.FWMajor == 0 && cfg.FWMinor == 0 {
		cfg.FWMajor, cfg.FWMinor = 1, 53
	}
	if cfg.BootMajor == 0 && cfg.BootMinor == 0 {
		cfg.BootMajor = 1
	}
	if len(cfg.Password) > 15 {
		return nil, errors.New("fossim: password longer than 15 characters")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sim{cfg: cfg, log: log, password: cfg.Password, flashMode: cfg.FlashMode, httpPort: cfg.HTTPPort}
	if s.httpPort == 0 {
		s.httpPort = 80
	}
	s.vals = map[string]string{
		"1_sz": "0", "1_rm": "1", "1_p0": "0", "1_p1": "0",
		"3_dn": cfg.Hostname, "3_ip": cfg.IP.String(), "3_nm": cfg.Netmask.String(),
		"3_gw": cfg.Gateway.String(), "3_dns": cfg.Gateway.String(), "3_dhcp": "0",
		"3_port": strconv.Itoa(int(s.httpPort)), "3_pwd": "0", "3_log": "0", "3_loghost": "0.0.0.0", "3_logport": "514",
		"2_mhost": "", "2_mfrom": "", "2_mto": "", "2_wen": "0", "2_wintv": "60", "2_as": "0", "2_men": "0",
	}
	if cfg.Password != "" {
		s.vals["3_pwd"] = "1"
	}
	runtime := map[string]bool{}
	for name, v := range cfg.Settings {
		k, err := berofos.LookupKey(name)
		if err != nil {
			return nil, fmt.Errorf("fossim: setting %s: %w", name, err)
		}
		if !k.Readable() || k.Kind == berofos.KindUint {
			return nil, fmt.Errorf("fossim: setting %s cannot be preset", name)
		}
		nv, err := k.Normalize(v)
		if err != nil {
			return nil, fmt.Errorf("fossim: %w", err)
		}
		s.vals[k.ConfKey] = nv
		runtime[k.ConfKey] = true
	}
	s.powerUp(time.Now(), runtime)
	return s, nil
}

// powerUp sets the runtime state from the power-up defaults (keeping preset ones).
func (s *Sim) powerUp(now time.Time, keep map[string]bool) {
	for rt, def := range map[string]string{"4_mode": "1_rm", "5_p0": "1_p0", "5_p1": "1_p1", "6_wen": "2_wen"} {
		if !keep[rt] {
			s.vals[rt] = s.vals[def]
		}
	}
	s.vals["6_wstate"] = "0"
	s.wdDue = time.Time{}
	if s.vals["6_wen"] == "1" {
		s.armWatchdog(now)
	}
}

func (s *Sim) armWatchdog(now time.Time) {
	s.vals["6_wstate"] = strconv.Itoa(berofos.WatchdogOn)
	s.wdDue = now.Add(s.wdogInterval())
}

func (s *Sim) wdogInterval() time.Duration {
	n, _ := strconv.Atoi(s.vals["2_wintv"])
	return time.Duration(max(n, 1)) * time.Second
}

// Knobs for tests.

// SetDelay delays every HTTP answer and GBL4 reply by d.
func (s *Sim) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// SetGarbage makes the device answer HTTP requests with 200 and bytes that are not a
// config.txt, and GBL4 requests with malformed frames.
func (s *Sim) SetGarbage(on bool) { s.mu.Lock(); s.garbage = on; s.mu.Unlock() }

// SetCRLF makes config.txt use CRLF line endings.
func (s *Sim) SetCRLF(on bool) { s.mu.Lock(); s.crlf = on; s.mu.Unlock() }

// SetDown makes the device stop answering: HTTP connections are closed without an answer
// and GBL4 requests are dropped. The watchdog keeps running.
func (s *Sim) SetDown(on bool) { s.mu.Lock(); s.down = on; s.mu.Unlock() }

// SetIgnoreSets makes sets answer 200 without taking effect, as a confused firmware would.
func (s *Sim) SetIgnoreSets(on bool) { s.mu.Lock(); s.ignoreSets = on; s.mu.Unlock() }

// Reboot power-cycles the device: the relays, power ports and watchdog return to their
// power-up defaults (modedef, power1def, power2def, wdogdef) and a flash-mode device
// becomes operational.
func (s *Sim) Reboot() {
	s.mu.Lock()
	oldMode := s.vals["4_mode"]
	s.flashMode = false
	s.powerUp(time.Now(), nil)
	s.emitLocked(0)
	if s.vals["4_mode"] != oldMode {
		s.emitLocked(s.modeCode())
	}
	s.mu.Unlock()
}

// PressButton toggles the relay mode, as an operator pressing the front button would.
func (s *Sim) PressButton() {
	s.mu.Lock()
	s.vals["4_mode"] = strconv.Itoa(1 - atoi(s.vals["4_mode"]))
	s.emitLocked(s.modeCode())
	s.mu.Unlock()
}

// Mode returns the relay mode: 0 A-D, 1 A-B (or A-B,C-D in bypass).
func (s *Sim) Mode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked(time.Now())
	return atoi(s.vals["4_mode"])
}

// Get returns a bnfos key as config.txt reports it, decoded.
func (s *Sim) Get(name string) (string, error) {
	k, err := berofos.LookupKey(name)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked(time.Now())
	if k.ConfKey == "0_wretv" {
		return s.remaining(time.Now()), nil
	}
	v, ok := s.vals[k.ConfKey]
	if !ok {
		return "", fmt.Errorf("fossim: %s not reported", name)
	}
	return v, nil
}

// Sets returns the set requests received so far.
func (s *Sim) Sets() []SetRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SetRecord(nil), s.sets...)
}

// Kicks returns how many watchdog kicks the device accepted.
func (s *Sim) Kicks() int { s.mu.Lock(); defer s.mu.Unlock(); return s.kicks }

// Messages returns the syslog messages emitted, "berofos:NN: text", whether or not a syslog
// host is configured.
func (s *Sim) Messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.messages...)
}

// FlashedImage returns the last firmware image received completely with a good checksum.
func (s *Sim) FlashedImage() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.flash.image...)
}

// Tick fires the watchdog if its deadline passed; Run calls it periodically.
func (s *Sim) Tick(now time.Time) {
	s.mu.Lock()
	s.tickLocked(now)
	s.mu.Unlock()
}

// tickLocked fails the watchdog over when due: relays to A-D, state failure, syslog 42 (and
// 10 when the relays moved). It returns the syslog codes it emitted.
func (s *Sim) tickLocked(now time.Time) []int {
	if s.vals["6_wstate"] != strconv.Itoa(berofos.WatchdogOn) || s.wdDue.IsZero() || now.Before(s.wdDue) {
		return nil
	}
	s.vals["6_wstate"] = strconv.Itoa(berofos.WatchdogFailure)
	s.wdDue = time.Time{}
	codes := []int{42}
	if s.vals["4_mode"] != "0" {
		s.vals["4_mode"] = "0"
		codes = append(codes, 10)
	}
	s.log.Info("fossim: watchdog timeout, failed over to A-D")
	s.emitLocked(codes...)
	return codes
}

func (s *Sim) remaining(now time.Time) string {
	if s.wdDue.IsZero() {
		return "0"
	}
	d := s.wdDue.Sub(now)
	if d < 0 {
		return "0"
	}
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

func (s *Sim) modeCode() int {
	switch {
	case s.vals["4_mode"] == "0":
		return 10
	case s.vals["1_sz"] == "1":
		return 12
	}
	return 11
}

func atoi(v string) int { n, _ := strconv.Atoi(v); return n }

// configTxt renders config.txt in table order, booleans of the configuration forms as
// "checked"/"", plus the keys firmware 1.5.7 adds (which clients must ignore).
func (s *Sim) configTxtLocked(now time.Time) []byte {
	c := berofos.ConfigTxt{Version: berofos.MagicVersion}
	for _, k := range berofos.Keys {
		if !k.Readable() {
			continue
		}
		v := s.vals[k.ConfKey]
		if k.ConfKey == "0_wretv" {
			v = s.remaining(now)
		}
		if checkbox[k.ConfKey] {
			if v == "1" {
				v = "checked"
			} else {
				v = ""
			}
		}
		c.Entries = append(c.Entries, berofos.Entry{Key: k.ConfKey, Value: v})
	}
	c.Entries = append(c.Entries, berofos.Entry{Key: "1_szd00", Value: "0"}, berofos.Entry{Key: "1_szd01", Value: "0"}, berofos.Entry{Key: "2_mail", Value: ""})
	b, err := c.MarshalText()
	if err != nil {
		// Values come from Normalize, which rejects control characters.
		panic("fossim: config.txt: " + err.Error())
	}
	if s.crlf {
		b = []byte(strings.ReplaceAll(string(b), "\n", "\r\n"))
	}
	return b
}

// applySet applies one parameter of a set command; it returns the syslog codes to send, or
// an error when the device would ignore the value.
func (s *Sim) applySetLocked(now time.Time, k berofos.Key, value string) ([]int, error) {
	v, err := k.Normalize(value)
	if err != nil {
		return nil, err
	}
	if k.Name == "apwd" {
		s.password = v
		return nil, nil
	}
	if k.Name == "smtptest" {
		return nil, nil
	}
	if k.Name == "wdog" {
		// Switching the watchdog on re-arms it, also from the failure state.
		s.vals[k.ConfKey] = v
		if v == "1" {
			was := s.vals["6_wstate"]
			s.armWatchdog(now)
			if was != strconv.Itoa(berofos.WatchdogOn) {
				return []int{40}, nil
			}
			return nil, nil
		}
		was := s.vals["6_wstate"]
		s.vals["6_wstate"] = "0"
		s.wdDue = time.Time{}
		if was != "0" {
			return []int{41}, nil
		}
		return nil, nil
	}
	old := s.vals[k.ConfKey]
	s.vals[k.ConfKey] = v
	if old == v {
		return nil, nil
	}
	switch k.Name {
	case "mode":
		return []int{s.modeCode()}, nil
	case "scenario":
		if v == "1" {
			return []int{21}, nil
		}
		return []int{20}, nil
	case "power1":
		return []int{map[string]int{"1": 30, "0": 31}[v]}, nil
	case "power2":
		return []int{map[string]int{"1": 32, "0": 33}[v]}, nil
	}
	return nil, nil
}
