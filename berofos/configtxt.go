package berofos

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors of the config.txt parser.
var (
	ErrNoMagic = errors.New("config.txt: no bnfos_confmap_magic line")
	ErrSyntax  = errors.New("config.txt: syntax error")
	ErrMissing = errors.New("config.txt: key missing")
	// ErrDuplicateKey is a key sent twice. A device never does that, so the answer is not
	// config.txt as the firmware wrote it (a proxy, another product, a corrupted flash), and
	// neither value can be trusted to be the one the relay acts on.
	ErrDuplicateKey = errors.New("config.txt: key given twice")
)

// MagicKey is the key of the first meaningful line of config.txt.
const MagicKey = "bnfos_confmap_magic"

// MagicVersion is the confmap version every known firmware reports.
const MagicVersion = "0.1"

// MaxConfigSize bounds the config.txt body a client reads (a real one is under 1 KiB).
const MaxConfigSize = 64 << 10

// Entry is one "key=value" line of config.txt.
type Entry struct {
	Key, Value string
}

// ConfigTxt is the device's /config.txt: the confmap version and the "<cmd>_<param>=value"
// lines in the order the device sent them. Unknown keys are kept and ignored by Get.
type ConfigTxt struct {
	Version string
	Entries []Entry
}

// Validate reports whether c can be encoded so that it parses back to the same value.
func (c *ConfigTxt) Validate() error {
	if c.Version == "" || strings.ContainsAny(c.Version, "\n") || strings.HasSuffix(c.Version, "\r") {
		return fmt.Errorf("%w: bad version %q", ErrNoMagic, c.Version)
	}
	seen := make(map[string]bool, len(c.Entries))
	for i, e := range c.Entries {
		switch {
		case e.Key == "" || strings.ContainsAny(e.Key, "=\n") || e.Key == MagicKey:
			return fmt.Errorf("%w: entry %d: bad key %q", ErrSyntax, i, e.Key)
		case strings.Contains(e.Value, "\n") || strings.HasSuffix(e.Value, "\r"):
			return fmt.Errorf("%w: entry %d (%s): bad value %q", ErrSyntax, i, e.Key, e.Value)
		case seen[e.Key]:
			return fmt.Errorf("%w: entry %d: %s", ErrDuplicateKey, i, e.Key)
		}
		seen[e.Key] = true
	}
	return nil
}

// MarshalText encodes c as a device sends it: LF line endings, the magic line first.
func (c *ConfigTxt) MarshalText() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s=%s\n", MagicKey, c.Version)
	for _, e := range c.Entries {
		fmt.Fprintf(&b, "%s=%s\n", e.Key, e.Value)
	}
	return b.Bytes(), nil
}

// UnmarshalText parses a config.txt body. Blank lines are skipped and a CR before the LF is
// tolerated (also several, as some proxies produce); the first meaningful line must be the magic
// line and the body must end with a newline (a truncated answer is an error, not a short
// config). After the magic, lines that are not "key=value" are skipped, as bnfos skips them.
// A key given twice is an error (ErrDuplicateKey), not "the last one wins": the firmware sends
// each key once, so a repeated key means the body is not what the device holds. Errors name
// the line.
func (c *ConfigTxt) UnmarshalText(b []byte) error {
	if len(b) > MaxConfigSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrSyntax, len(b), MaxConfigSize)
	}
	var out ConfigTxt
	first := map[string]int{} // key -> line it was first given on
	lines := strings.Split(string(b), "\n")
	last := len(lines) - 1
	if lines[last] != "" {
		return fmt.Errorf("%w: line %d: no final newline (truncated answer?)", ErrSyntax, last+1)
	}
	for i, line := range lines[:last] {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if out.Version == "" {
			if !ok || key != MagicKey || value == "" {
				return fmt.Errorf("%w: line %d: %.40q", ErrNoMagic, i+1, line)
			}
			out.Version = value
			continue
		}
		if !ok || key == "" {
			continue // bnfos skips such lines too; the keys that matter are checked by Get
		}
		if key == MagicKey {
			return fmt.Errorf("%w: line %d: second magic line", ErrSyntax, i+1)
		}
		if l, dup := first[key]; dup {
			return fmt.Errorf("%w: line %d: %.40q again (first on line %d)", ErrDuplicateKey, i+1, key, l)
		}
		first[key] = i + 1
		out.Entries = append(out.Entries, Entry{Key: key, Value: value})
	}
	if out.Version == "" {
		return fmt.Errorf("%w: empty answer", ErrNoMagic)
	}
	*c = out
	return nil
}

// ParseConfigTxt parses a config.txt body; see UnmarshalText.
func ParseConfigTxt(b []byte) (*ConfigTxt, error) {
	c := new(ConfigTxt)
	if err := c.UnmarshalText(b); err != nil {
		return nil, err
	}
	return c, nil
}

// Raw returns the value of a config.txt key as sent.
func (c *ConfigTxt) Raw(confKey string) (string, bool) {
	for i := len(c.Entries) - 1; i >= 0; i-- {
		if c.Entries[i].Key == confKey {
			return c.Entries[i].Value, true
		}
	}
	return "", false
}

// Set replaces the value of a config.txt key, or appends it.
func (c *ConfigTxt) Set(confKey, value string) {
	for i := range c.Entries {
		if c.Entries[i].Key == confKey {
			c.Entries[i].Value = value
			return
		}
	}
	c.Entries = append(c.Entries, Entry{Key: confKey, Value: value})
}

// Get returns the value of a bnfos key ("mode", "wdogstate", ...) decoded as bnfos prints it.
func (c *ConfigTxt) Get(name string) (string, error) {
	k, err := LookupKey(name)
	if err != nil {
		return "", err
	}
	if !k.Readable() {
		return "", fmt.Errorf("%w: %s", ErrNotReadable, name)
	}
	raw, ok := c.Raw(k.ConfKey)
	if !ok {
		return "", fmt.Errorf("%w: %s (%s)", ErrMissing, name, k.ConfKey)
	}
	return k.Decode(raw)
}

// Int returns a boolean or numeric bnfos key as a number.
func (c *ConfigTxt) Int(name string) (int, error) {
	v, err := c.Get(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%w for %s: %q is not a number", ErrValue, name, v)
	}
	return n, nil
}

// Mode returns the relay mode: 0 (A-D) or 1 (A-B, or A-B and C-D in bypass).
func (c *ConfigTxt) Mode() (int, error) { return c.Int("mode") }

// Values returns every readable bnfos key the device reported, in table order.
func (c *ConfigTxt) Values() []Entry {
	var out []Entry
	for _, k := range Keys {
		if !k.Readable() {
			continue
		}
		if v, err := c.Get(k.Name); err == nil {
			out = append(out, Entry{Key: k.Name, Value: v})
		}
	}
	return out
}
