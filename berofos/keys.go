package berofos

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Errors about keys and values; returned errors wrap them with the key and the reason.
var (
	ErrUnknownKey  = errors.New("berofos: unknown key")
	ErrNotReadable = errors.New("berofos: key cannot be read")
	ErrNotWritable = errors.New("berofos: key cannot be set")
	ErrValue       = errors.New("berofos: bad value")
)

// Kind is how a key's value is written and read.
type Kind int

// The value kinds of the bnfos key table.
const (
	KindBool   Kind = iota // yes/y/true/1 or no/n/false/0; reads 1 for "1" or "checked"
	KindPort               // 1..65535
	KindUint               // a decimal number 0..65535 (read-only counters and states)
	KindIPv4               // dotted quad
	KindString             // printable text
)

// Key is one entry of the bnfos key table: the name the operator uses ("mode", "wdogitime"),
// the HTTP set command and parameter that write it, and the config.txt key that reads it.
type Key struct {
	Name    string
	Cmd     int    // 0: cannot be set
	Fixed   string // query parameters sent before the value, e.g. "p=0" for power1
	Param   string // the set parameter carrying the value; "" for a trigger (smtptest)
	ConfKey string // config.txt key; "" when the device does not report it
	Kind    Kind
	MaxLen  int // KindString: longest accepted value; 0 means 63
	Help    string
}

// Keys is the bnfos key table, in bnfos --show order.
var Keys = []Key{
	{Name: "scenario", Cmd: 1, Param: "sz", ConfKey: "1_sz", Kind: KindBool, Help: "scenario (0=fallback; 1=bypass)"},
	{Name: "mode", Cmd: 4, Param: "mode", ConfKey: "4_mode", Kind: KindBool, Help: "relay mode (0=A--D; 1=A--B or A--B,C--D)"},
	{Name: "modedef", Cmd: 1, Param: "rm", ConfKey: "1_rm", Kind: KindBool, Help: "default relay mode at power-up"},
	{Name: "power1", Cmd: 5, Fixed: "p=0", Param: "s", ConfKey: "5_p0", Kind: KindBool, Help: "state of power port 1 (0=off; 1=on)"},
	{Name: "power1def", Cmd: 1, Param: "p0", ConfKey: "1_p0", Kind: KindBool, Help: "default state of power port 1"},
	{Name: "power2", Cmd: 5, Fixed: "p=1", Param: "s", ConfKey: "5_p1", Kind: KindBool, Help: "state of power port 2 (0=off; 1=on)"},
	{Name: "power2def", Cmd: 1, Param: "p1", ConfKey: "1_p1", Kind: KindBool, Help: "default state of power port 2"},
	{Name: "hostname", Cmd: 3, Param: "dn", ConfKey: "3_dn", Kind: KindString, Help: "device hostname"},
	{Name: "address", Cmd: 3, Param: "ip", ConfKey: "3_ip", Kind: KindIPv4, Help: "ip address"},
	{Name: "netmask", Cmd: 3, Param: "nm", ConfKey: "3_nm", Kind: KindIPv4, Help: "netmask"},
	{Name: "gateway", Cmd: 3, Param: "gw", ConfKey: "3_gw", Kind: KindIPv4, Help: "gateway address"},
	{Name: "dns", Cmd: 3, Param: "dns", ConfKey: "3_dns", Kind: KindIPv4, Help: "dns server address"},
	{Name: "dhcp", Cmd: 3, Param: "dhcp", ConfKey: "3_dhcp", Kind: KindBool, Help: "query dhcp server (0=off; 1=on)"},
	{Name: "port", Cmd: 3, Param: "port", ConfKey: "3_port", Kind: KindPort, Help: "http listen port"},
	{Name: "pwd", Cmd: 3, Param: "pwd", ConfKey: "3_pwd", Kind: KindBool, Help: "http password protection (0=off; 1=on)"},
	{Name: "apwd", Cmd: 3, Param: "apwd", Kind: KindString, MaxLen: 15, Help: "admin password (set only)"},
	{Name: "smtpserv", Cmd: 2, Param: "mhost", ConfKey: "2_mhost", Kind: KindString, Help: "smtp server"},
	{Name: "smtpfrom", Cmd: 2, Param: "mfrom", ConfKey: "2_mfrom", Kind: KindString, Help: "smtp sender address"},
	{Name: "smtpto", Cmd: 2, Param: "mto", ConfKey: "2_mto", Kind: KindString, Help: "smtp destination address"},
	{Name: "smtptest", Cmd: 7, Kind: KindString, Help: "trigger a test mail (set only)"},
	{Name: "syslog", Cmd: 3, Param: "syslog", ConfKey: "3_log", Kind: KindBool, Help: "syslog logging (0=off; 1=on)"},
	{Name: "slgip", Cmd: 3, Param: "slgip", ConfKey: "3_loghost", Kind: KindIPv4, Help: "syslog server ip"},
	{Name: "slgpt", Cmd: 3, Param: "slgpt", ConfKey: "3_logport", Kind: KindPort, Help: "syslog server port"},
	{Name: "wdog", Cmd: 6, Param: "wen", ConfKey: "6_wen", Kind: KindBool, Help: "watchdog enable (0=off; 1=on)"},
	{Name: "wdogdef", Cmd: 2, Param: "wen", ConfKey: "2_wen", Kind: KindBool, Help: "default watchdog enable"},
	{Name: "wdogstate", ConfKey: "6_wstate", Kind: KindUint, Help: "watchdog state (0=off; 1=on; 2=failure)"},
	{Name: "wdogitime", Cmd: 2, Param: "wintv", ConfKey: "2_wintv", Kind: KindPort, Help: "watchdog interval time (s)"},
	{Name: "wdogaudio", Cmd: 2, Param: "as", ConfKey: "2_as", Kind: KindBool, Help: "watchdog audio alarm (0=off; 1=on)"},
	{Name: "wdogmail", Cmd: 2, Param: "men", ConfKey: "2_men", Kind: KindBool, Help: "watchdog alarm mails (0=off; 1=on)"},
	{Name: "wdogrtime", ConfKey: "0_wretv", Kind: KindUint, Help: "watchdog remaining time to failure (s)"},
}

// Watchdog states as config.txt reports them in 6_wstate.
const (
	WatchdogOff     = 0
	WatchdogOn      = 1
	WatchdogFailure = 2
)

// LookupKey finds a key of the table by its bnfos name.
func LookupKey(name string) (Key, error) {
	for _, k := range Keys {
		if k.Name == name {
			return k, nil
		}
	}
	return Key{}, fmt.Errorf("%w %q", ErrUnknownKey, name)
}

// Readable reports whether config.txt carries the key.
func (k Key) Readable() bool { return k.ConfKey != "" }

// Writable reports whether the key can be set over HTTP.
func (k Key) Writable() bool { return k.Cmd != 0 }

// Verifiable reports whether a set of this key can be confirmed by reading config.txt back.
func (k Key) Verifiable() bool { return k.Writable() && k.Readable() && k.Param != "" }

// Normalize checks a value the operator wants to set and returns it as the device expects it
// on the wire (booleans become "0" or "1").
func (k Key) Normalize(value string) (string, error) {
	if !k.Writable() {
		return "", fmt.Errorf("%w: %s is read-only", ErrNotWritable, k.Name)
	}
	bad := func(why string) error { return fmt.Errorf("%w for %s: %q: %s", ErrValue, k.Name, value, why) }
	switch k.Kind {
	case KindBool:
		switch strings.ToLower(value) {
		case "1", "yes", "y", "true", "on":
			return "1", nil
		case "0", "no", "n", "false", "off":
			return "0", nil
		}
		return "", bad("want 0 or 1")
	case KindPort:
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > 65535 {
			return "", bad("want a number 1..65535")
		}
		return strconv.Itoa(n), nil
	case KindUint:
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > 65535 {
			return "", bad("want a number 0..65535")
		}
		return strconv.Itoa(n), nil
	case KindIPv4:
		a, err := netip.ParseAddr(value)
		if err != nil || !a.Is4() {
			return "", bad("want an IPv4 address")
		}
		return a.String(), nil
	}
	maxLen := k.MaxLen
	if maxLen == 0 {
		maxLen = 63
	}
	if len(value) > maxLen {
		return "", bad(fmt.Sprintf("longer than %d characters", maxLen))
	}
	for _, r := range value {
		if r < 0x20 || r == 0x7f {
			return "", bad("control character")
		}
	}
	return value, nil
}

// Decode turns a config.txt value into the form bnfos prints: booleans read 1 when the value
// is "1" or "checked" and 0 otherwise; numbers must be decimal.
func (k Key) Decode(raw string) (string, error) {
	switch k.Kind {
	case KindBool:
		if raw == "1" || raw == "checked" {
			return "1", nil
		}
		return "0", nil
	case KindPort, KindUint:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil || n < 0 || n > 65535 {
			return "", fmt.Errorf("%w for %s: device reported %q", ErrValue, k.Name, raw)
		}
		return strconv.Itoa(n), nil
	}
	return raw, nil
}
