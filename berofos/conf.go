package berofos

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/google/renameio/v2"
)

// DefaultConfPath is where bnfos and xivo-berofos keep the device list.
const DefaultConfPath = "/etc/bnfos.conf"

// ErrConf is wrapped by every bnfos.conf error; ConfError adds the line.
var ErrConf = errors.New("bnfos.conf")

// ConfError is a malformed bnfos.conf line.
type ConfError struct {
	Line   int // 1-based; 0 when the error concerns a whole section
	Reason string
}

func (e *ConfError) Error() string {
	if e.Line == 0 {
		return "bnfos.conf: " + e.Reason
	}
	return fmt.Sprintf("bnfos.conf:%d: %s", e.Line, e.Reason)
}

func (e *ConfError) Unwrap() error { return ErrConf }

// Device is one berofos: a bnfos.conf section.
type Device struct {
	Name  string           // section name: fos1, fos2, ...
	Host  string           // host or host:port of the HTTP interface
	MAC   net.HardwareAddr // needed for the GBL4 commands (kick, ping, netconf, ...)
	Login string           // "user:password" for HTTP Basic auth, or "" when none

	// UDPPort is the GBL4 port, 0 meaning 50123. Not part of bnfos.conf; tests and labs
	// that run a simulator on another port set it.
	UDPPort int
}

func (d Device) String() string {
	if d.Name != "" {
		return d.Name
	}
	return d.Host
}

// Validate reports whether d is usable and can be written to bnfos.conf.
func (d Device) Validate() error {
	if !validName(d.Name) {
		return fmt.Errorf("%w: device name %q: want letters, digits, '_', '-' or '.' (bnfos wants fos1, fos2, ...)", ErrConf, d.Name)
	}
	if d.Host == "" {
		return fmt.Errorf("%w: [%s]: host missing", ErrConf, d.Name)
	}
	if err := checkHost(d.Host); err != nil {
		return fmt.Errorf("%w: [%s]: host %q: %v", ErrConf, d.Name, d.Host, err)
	}
	if d.MAC != nil && len(d.MAC) != 6 {
		return fmt.Errorf("%w: [%s]: mac must have 6 bytes", ErrConf, d.Name)
	}
	if d.Login != "" {
		if err := checkLogin(d.Login); err != nil {
			return fmt.Errorf("%w: [%s]: login: %v", ErrConf, d.Name, err)
		}
	}
	if d.UDPPort < 0 || d.UDPPort > 65535 {
		return fmt.Errorf("%w: [%s]: udp port %d out of range", ErrConf, d.Name, d.UDPPort)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
		if !ok {
			return false
		}
	}
	return true
}

func checkHost(h string) error {
	for _, r := range h {
		if r <= ' ' || r == 0x7f || r == '/' || r == '?' || r == '#' || r == '@' {
			return errors.New("contains a space, control character or URL delimiter")
		}
	}
	if host, port, err := net.SplitHostPort(h); err == nil {
		n, perr := strconv.Atoi(port)
		if perr != nil || n < 1 || n > 65535 || host == "" {
			return errors.New("want host or host:port with a port 1..65535")
		}
	} else if strings.Count(h, ":") == 1 {
		return errors.New("want host or host:port")
	}
	return nil
}

func checkLogin(l string) error {
	if !strings.Contains(l, ":") {
		return errors.New("want user:password")
	}
	for _, r := range l {
		if r < 0x20 || r == 0x7f {
			return errors.New("contains a control character")
		}
	}
	if strings.TrimSpace(l) != l {
		return errors.New("leading or trailing space")
	}
	return nil
}

// ParseConf reads bnfos.conf: "[name]" sections with "key = value" lines, '#' and ';'
// comments, blank lines. bnfos reads mac, host and login; other keys are ignored as bnfos
// ignores them. A section needs a host. Errors carry the line number and the reason.
func ParseConf(b []byte) ([]Device, error) {
	var devs []Device
	var cur *Device
	seenKey := map[string]bool{}
	sectionLine := 0
	finish := func() error {
		if cur == nil {
			return nil
		}
		if cur.Host == "" {
			return &ConfError{Line: sectionLine, Reason: fmt.Sprintf("[%s]: no host line", cur.Name)}
		}
		devs = append(devs, *cur)
		return nil
	}
	names := map[string]bool{}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 BOM from a Windows editor
	for i, line := range strings.Split(string(b), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, &ConfError{Line: n, Reason: "section header without closing ']'"}
			}
			name := strings.TrimSpace(line[1 : len(line)-1])
			if !validName(name) {
				return nil, &ConfError{Line: n, Reason: fmt.Sprintf("bad section name %q (want fos1, fos2, ...)", name)}
			}
			if names[name] {
				return nil, &ConfError{Line: n, Reason: fmt.Sprintf("section [%s] appears twice", name)}
			}
			if err := finish(); err != nil {
				return nil, err
			}
			names[name] = true
			cur, sectionLine = &Device{Name: name}, n
			clear(seenKey)
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &ConfError{Line: n, Reason: fmt.Sprintf("want key = value, got %.40q", line)}
		}
		key, value = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(value)
		if cur == nil {
			return nil, &ConfError{Line: n, Reason: fmt.Sprintf("%q before the first [fosN] section", key)}
		}
		if seenKey[key] {
			return nil, &ConfError{Line: n, Reason: fmt.Sprintf("%s given twice in [%s]", key, cur.Name)}
		}
		seenKey[key] = true
		if reason := cur.setKey(key, value); reason != "" {
			return nil, &ConfError{Line: n, Reason: reason}
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return devs, nil
}

// setKey sets one key of a [fosN] section, or returns why its value is refused. Unknown keys
// are ignored, as the device's own tools ignore them.
func (d *Device) setKey(key, value string) (reason string) {
	switch key {
	case "mac":
		mac, err := net.ParseMAC(value)
		if err != nil || len(mac) != 6 {
			return fmt.Sprintf("mac %q: want XX:XX:XX:XX:XX:XX", value)
		}
		d.MAC = mac
	case "host":
		if value == "" {
			return "empty host"
		}
		if err := checkHost(value); err != nil {
			return fmt.Sprintf("host %q: %v", value, err)
		}
		d.Host = value
	case "login":
		if value != "" {
			if err := checkLogin(value); err != nil {
				return "login: " + err.Error()
			}
		}
		d.Login = value
	}
	return ""
}

// MarshalConf writes devices in bnfos.conf format, in the given order.
func MarshalConf(devs []Device) ([]byte, error) {
	var b bytes.Buffer
	names := map[string]bool{}
	for i, d := range devs {
		if err := d.Validate(); err != nil {
			return nil, err
		}
		if names[d.Name] {
			return nil, fmt.Errorf("%w: device name %q twice", ErrConf, d.Name)
		}
		names[d.Name] = true
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[%s]\n", d.Name)
		if d.MAC != nil {
			fmt.Fprintf(&b, "mac = %s\n", strings.ToUpper(d.MAC.String()))
		}
		fmt.Fprintf(&b, "host = %s\n", d.Host)
		if d.Login != "" {
			fmt.Fprintf(&b, "login = %s\n", d.Login)
		}
	}
	return b.Bytes(), nil
}

// LoadConf reads and parses a bnfos.conf file.
func LoadConf(path string) ([]Device, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	devs, err := ParseConf(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return devs, nil
}

// WriteConf replaces a bnfos.conf file atomically (readers see the old or the new file,
// never a partial one). The mode is 0600: the file holds the devices' passwords.
func WriteConf(path string, devs []Device) error {
	b, err := MarshalConf(devs)
	if err != nil {
		return err
	}
	return renameio.WriteFile(path, b, 0o600)
}

// FindDevice returns the device named name ("fos1").
func FindDevice(devs []Device, name string) (Device, error) {
	for _, d := range devs {
		if d.Name == name {
			return d, nil
		}
	}
	return Device{}, fmt.Errorf("%w: no device [%s]", ErrConf, name)
}
