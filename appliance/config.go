package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"

	"github.com/redundantd/redundantd/berofos"
	pbxsync "github.com/redundantd/redundantd/sync"
	"github.com/redundantd/redundantd/vrrp"
)

// Defaults applied to keys the operator leaves out.
const (
	DefaultStateDir       = "/var/lib/redundantd"
	DefaultPriority       = 100
	DefaultAdvertInterval = time.Second
	DefaultGARPCount      = 5
	DefaultGARPInterval   = 200 * time.Millisecond
	DefaultAPIListen      = "127.0.0.1:7400"
	DefaultBerofosConf    = "/etc/bnfos.conf"
	DefaultKickInterval   = 5 * time.Second // res_bnfos's default
	DefaultBerofosTimeout = 3 * time.Second // bnfos's default
	DefaultPollInterval   = 2 * time.Second
	DefaultSyncListen     = ":7401"
	DefaultTrashRetention = 7 * 24 * time.Hour
	DefaultMaxDelete      = 0.2
)

// Config is the validated configuration of one redundantd node. It is produced only by
// ParseConfig / LoadConfig, so every value in it has been checked.
type Config struct {
	Node       NodeConfig
	Redundancy RedundancyConfig
	Berofos    BerofosConfig
	Sync       SyncConfig
	API        APIConfig
	Peer       PeerLinkConfig
	// Notify are the channels events are sent to ([[notify]], docs/notifications.md).
	Notify []NotifyConfig
	// Services are the PBX's services, started in order on the Master and stopped in
	// reverse order on a Backup ([[service]], docs/services.md).
	Services []ServiceConfig
	// Console is the web console on the API listener ([console], docs/console.md).
	Console ConsoleConfig
}

// SyncConfig replicates the PBX's configuration and voice data from the Master to the
// Backup; the direction follows the VRRP role.
type SyncConfig struct {
	Enabled bool
	Paths   []string // absolute trees, the same on both nodes
	Listen  string   // the sync server's address, on every node
	// Peer is the other node's sync address; default redundancy.peer with listen's port.
	Peer            string
	PeerFingerprint string // SHA-256 of the peer's certificate (redundantd -fingerprint)
	Interval        string // "60s" or a cron spec
	Watch           bool
	TrashRetention  time.Duration
	MaxDelete       float64
}

// BerofosConfig drives the berofos relay boxes that move the ISDN lines to the Master.
type BerofosConfig struct {
	Enabled bool
	// Conf is the bnfos.conf file listing the devices (as written by
	// `redundantctl berofos scan -x` or the vendor's `bnfos --scan -x`).
	Conf string
	// Devices names the sections of Conf to drive; empty means every device in it.
	Devices []string
	// LinesMode is the relay mode that routes the lines to THIS node: 1 (A-B) for the node
	// wired to port B, 0 (A-D) for the node wired to port D.
	LinesMode int
	// Bypass keeps the device watchdog kicked while this node is Master, so that the lines
	// fall back to port D (an existing PBX) by themselves when it is not.
	Bypass       bool
	KickInterval time.Duration
	Timeout      time.Duration
	PollInterval time.Duration
}

// NodeConfig describes this node: who it is and where it lives on the network.
type NodeConfig struct {
	ID        string
	Interface string
	// Address is the node's own fixed IPv4 address on Interface: the source of its adverts
	// and the tie-breaker between equal priorities (RFC 3768 section 6.4.3).
	Address  netip.Addr
	StateDir string
}

// RedundancyConfig holds Epygi's "Redundancy Settings" in our words.
type RedundancyConfig struct {
	Enabled bool
	// Version is the VRRP version: 2 (RFC 3768, the default) or 3 (RFC 9568: sub-second
	// adverts, IPv6 virtual IPs).
	Version        uint8
	GroupID        uint8 // the VRID
	Priority       uint8
	AdvertInterval time.Duration
	// Preempt lets a higher-priority node take the Master role from a healthy Master. Off by
	// default: the node that came up first stays Master and a returning node is Backup.
	Preempt    bool
	VirtualIPs []netip.Prefix
	// AllowLinkLocal accepts 169.254.0.0/16 addresses (RFC 3927) as virtual IPs, node address
	// and peer. Off by default: such an address on a PBX's LAN is almost always a DHCP
	// failure copied into the file, and no router forwards it.
	AllowLinkLocal bool
	Peer           netip.Addr // the other node's fixed address; required when Unicast
	Unicast        bool
	VirtualMAC     bool
	GARPCount      int
	GARPInterval   time.Duration
	// GARPRefresh is the period of the gratuitous ARPs a Master sends after its burst, for as
	// long as it is Master; 0 (the default) sends none.
	GARPRefresh time.Duration
	// NARouter sets the Router flag of the unsolicited Neighbor Advertisements of an IPv6
	// group (RFC 4861 section 4.4): on when hosts use a virtual IP as their default router.
	NARouter bool
	// BackupMode is the group's Backup mode until an operator changes it at run time (the
	// run-time setting is kept in state_dir and wins; docs/operations.md).
	BackupMode BackupMode
	// Notify is a keepalived-style notify command run after each transition.
	Notify []string
	// Groups are the node's other VRRP groups ([[redundancy.group]], config_groups.go),
	// which move with this one as one unit.
	Groups []GroupConfig
}

// APIConfig is the HTTP API used by redundantctl, the console and monitoring.
type APIConfig struct {
	Listen string
	// TokenFile holds the bearer token every mutating request needs (and reads too when
	// Listen is not loopback); created 0600 with a random token on first start.
	TokenFile string
	// Names are the host names the API answers to besides address literals and localhost
	// (the Host header check against DNS rebinding).
	Names []string
}

// rawConfig mirrors the TOML file. Optional keys are pointers so that "absent" and "zero"
// can be told apart when defaults are applied. Decoding is strict: a key not listed here is
// an error.
type rawConfig struct {
	Node       rawNode       `toml:"node"`
	Redundancy rawRedundancy `toml:"redundancy"`
	Berofos    rawBerofos    `toml:"berofos"`
	Sync       rawSync       `toml:"sync"`
	API        rawAPI        `toml:"api"`
	Services   []rawService  `toml:"service"`
	Peer       rawPeer       `toml:"peer"`
	Notify     []rawNotify   `toml:"notify"`
	Console    rawConsole    `toml:"console"`
}

type rawNode struct {
	ID        *string `toml:"id"`
	Interface string  `toml:"interface"`
	Address   string  `toml:"address"`
	StateDir  *string `toml:"state_dir"`
}

type rawRedundancy struct {
	Enabled        *bool    `toml:"enabled"`
	Version        *int64   `toml:"version"`
	GroupID        *int64   `toml:"group_id"`
	Priority       *int64   `toml:"priority"`
	AdvertInterval *string  `toml:"advert_interval"`
	Preempt        *bool    `toml:"preempt"`
	VirtualIPs     []string `toml:"virtual_ips"`
	AllowLinkLocal *bool    `toml:"allow_link_local"`
	Peer           *string  `toml:"peer"`
	Unicast        *bool    `toml:"unicast"`
	VirtualMAC     *bool    `toml:"virtual_mac"`
	GARPCount      *int64   `toml:"garp_count"`
	GARPInterval   *string  `toml:"garp_interval"`
	GARPRefresh    *string  `toml:"garp_refresh"`
	NARouter       *bool    `toml:"na_router"`
	BackupMode     *string  `toml:"backup_mode"`
	Notify         []string `toml:"notify"`

	Groups []rawGroup `toml:"group"` // [[redundancy.group]]
}

type rawBerofos struct {
	Enabled      *bool    `toml:"enabled"`
	Conf         *string  `toml:"conf"`
	Devices      []string `toml:"devices"`
	LinesMode    *int64   `toml:"lines_mode"`
	Bypass       *bool    `toml:"bypass"`
	KickInterval *string  `toml:"kick_interval"`
	Timeout      *string  `toml:"timeout"`
	PollInterval *string  `toml:"poll_interval"`
}

type rawSync struct {
	Enabled         *bool    `toml:"enabled"`
	Paths           []string `toml:"paths"`
	Listen          *string  `toml:"listen"`
	Peer            *string  `toml:"peer"`
	PeerFingerprint *string  `toml:"peer_fingerprint"`
	Interval        *string  `toml:"interval"`
	Watch           *bool    `toml:"watch"`
	TrashRetention  *string  `toml:"trash_retention"`
	MaxDelete       *float64 `toml:"max_delete"`
}

type rawAPI struct {
	Listen    *string  `toml:"listen"`
	TokenFile *string  `toml:"token_file"`
	Names     []string `toml:"names"`
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")

// ConfigError names the key that is wrong and why. Several are joined when a file has more
// than one problem, so the operator can fix them all in one pass.
type ConfigError struct {
	Key     string // dotted TOML key, for example "redundancy.group_id"
	Line    int    // 1-based line in the file, 0 when not known
	Problem string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", e.Key, e.Line, e.Problem)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Problem)
}

func (e *ConfigError) Unwrap() error { return ErrConfig }

// Size limits. A configuration is a few kilobytes; these bound what a wrong file (a log, a
// core dump, a generated list gone wrong) costs to reject: decoding a 1 MiB document takes
// about 0.2 s, where an unbounded 50 MB list took 12.7 s and 922 MB before the error.
const (
	// MaxConfigSize is the largest configuration file read, in bytes.
	MaxConfigSize = 1 << 20
	// MaxVirtualIPs is the most redundancy.virtual_ips: an RFC 3768 advert's count is one byte.
	MaxVirtualIPs = 255
	// MaxSyncPaths is the most sync.paths (the sync protocol's tree index).
	MaxSyncPaths = pbxsync.MaxTrees
	// MaxBerofosDevices is the most berofos.devices; a pair of PBXs drives one or two boxes,
	// so 32 leaves room for any rack.
	MaxBerofosDevices = 32
	// MaxServices is the most [[service]] entries: a PBX is a handful of daemons.
	MaxServices = 32
	// maxReported is how many problems one error lists; the rest are counted.
	maxReported = 25
)

// LoadConfig reads and validates the TOML file at path, and the files it names that the
// daemon reads at start-up: berofos.conf when [berofos] is enabled (it must parse and list
// the configured devices), and this node's sync certificate when there is one (the peer's
// fingerprint must not be it). A file that LoadConfig accepts is one the daemon starts with,
// short of the host's own state (the interface exists, the ports are free).
func LoadConfig(path string) (*Config, error) {
	b, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(b)
	if err == nil {
		if err = checkFiles(cfg); err != nil {
			addLines(err, bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// readConfigFile reads at most MaxConfigSize bytes: /dev/zero or a multi-gigabyte log given
// by mistake is refused without being read.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	if len(b) > MaxConfigSize {
		return nil, fmt.Errorf("%s: %w", path, tooLarge())
	}
	return b, nil
}

func tooLarge() error {
	return &ConfigError{Key: "(document)", Problem: fmt.Sprintf("larger than %d bytes (1 MiB): not a redundantd configuration", MaxConfigSize)}
}

// ParseConfig strictly decodes a TOML document (unknown keys are errors) and validates it,
// reporting every problem found, each with its key. It reads no file: LoadConfig adds the
// checks of the files the configuration names.
func ParseConfig(b []byte) (*Config, error) {
	if len(b) > MaxConfigSize {
		return nil, tooLarge()
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 BOM from a Windows editor
	if err := checkUTF8(b); err != nil {
		return nil, err
	}
	var raw rawConfig
	dec := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, decodeError(err, b)
	}
	cfg, err := raw.validate()
	if err != nil {
		addLines(err, b)
		return nil, err
	}
	return cfg, nil
}

// checkUTF8 finds the first byte that is not UTF-8 and names its line, column and, where the
// line is a "key = value" line, its key. go-toml reports such bytes as whatever token it
// expected instead ("expected '=' after key"), often without a key.
func checkUTF8(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	off := 0
	for off < len(b) {
		r, size := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		off += size
	}
	lineStart := bytes.LastIndexByte(b[:off], '\n') + 1
	line := bytes.Count(b[:off], []byte("\n")) + 1
	col := utf8.RuneCount(b[lineStart:off]) + 1
	return &ConfigError{Key: keyAtLine(b, lineStart, off), Line: line,
		Problem: fmt.Sprintf("column %d: byte 0x%02x is not UTF-8 (TOML files are UTF-8: save the file as UTF-8)", col, b[off])}
}

// keyAtLine names, as well as a plain scan can, the key whose line starts at lineStart: the
// last table header before it and the bare key before '=' on the line, when it precedes off.
func keyAtLine(b []byte, lineStart, off int) string {
	return joinKey(tableBefore(b, lineStart), keyOnLine(b[lineStart:off]))
}

// tableBefore is the name of the last table header ("[node]", "[[service]]") before offset
// end, "" when there is none.
func tableBefore(b []byte, end int) string {
	table := ""
	for _, l := range bytes.Split(b[:end], []byte("\n")) {
		if name, ok := tableHeader(l); ok {
			table = name
		}
	}
	return table
}

func tableHeader(l []byte) (string, bool) {
	l = bytes.TrimSpace(l)
	if len(l) < 3 || l[0] != '[' {
		return "", false
	}
	i := bytes.IndexByte(l, ']')
	if i < 0 {
		return "", false
	}
	return strings.Trim(string(l[1:i]), "[] \t"), true
}

// keyOnLine is the bare key before '=' in line, "" when there is none.
func keyOnLine(line []byte) string {
	eq := bytes.IndexByte(line, '=')
	if eq <= 0 {
		return ""
	}
	k := strings.TrimSpace(string(line[:eq]))
	if k == "" || strings.ContainsAny(k, " \t\"'[#") {
		return ""
	}
	return k
}

func joinKey(table, key string) string {
	switch {
	case table != "" && key != "":
		return table + "." + key
	case key != "":
		return key
	case table != "":
		return table
	}
	return "(document)"
}

// addLines fills in the line of each ConfigError of err that has none, from a scan of the
// document: the validators work on decoded values, which carry no position.
func addLines(err error, b []byte) {
	var lines map[string]int
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		ce, ok := e.(*ConfigError)
		if !ok || ce.Line != 0 {
			return
		}
		if lines == nil {
			lines = keyLines(b)
		}
		ce.Line = lines[ce.Key]
		if ce.Line == 0 && strings.HasSuffix(ce.Key, "]") {
			if i := strings.LastIndexByte(ce.Key, '['); i > 0 {
				ce.Line = lines[ce.Key[:i]] // a list entry: the line of its key
			}
		}
		if i := strings.LastIndex(ce.Key, "]."); ce.Line == 0 && i > 0 {
			ce.Line = lines[ce.Key[:i+1]] // a key missing from a [[table]] entry: its header
		}
	}
	walk(err)
}

// keyLines maps the dotted keys of the document ("node.interface", "service[1].start") to
// the line they are given on, as far as a line scan can tell: bare keys under [table] and
// [[table]] headers. Keys it cannot place are absent (their errors have no line).
func keyLines(b []byte) map[string]int {
	out := map[string]int{}
	table := ""
	entries := map[string]int{} // [[table]] -> entries seen
	for i, l := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if name, ok := tableHeader(t); ok {
			table = name
			if bytes.HasPrefix(t, []byte("[[")) {
				table = fmt.Sprintf("%s[%d]", name, entries[name])
				entries[name]++
			}
			if _, seen := out[table]; !seen {
				out[table] = i + 1
			}
			continue
		}
		if k := keyOnLine(t); k != "" {
			key := joinKey(table, k)
			if _, seen := out[key]; !seen {
				out[key] = i + 1
			}
		}
	}
	return out
}

// lineBounds returns the offsets of the start and end of the 1-based line n of b.
func lineBounds(b []byte, n int) (start, end int) {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(b[start:], '\n')
		if j < 0 {
			return len(b), len(b)
		}
		start += j + 1
	}
	end = len(b)
	if j := bytes.IndexByte(b[start:], '\n'); j >= 0 {
		end = start + j
	}
	return start, end
}

// decodeError turns go-toml's errors into ConfigErrors that name the key. go-toml gives the
// key without its table for some errors ("interface" for a key given twice) and none for
// syntax errors; the document b supplies them.
func decodeError(err error, b []byte) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, _ := e.Position()
			errs = append(errs, &ConfigError{Key: dottedKey(e.Key()), Line: line, Problem: "unknown key"})
		}
		return joinCapped(errs)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		key := dottedKey(de.Key())
		if line > 0 {
			start, end := lineBounds(b, line)
			_, header := tableHeader(b[start:end])
			switch {
			case key == "":
				key = keyAtLine(b, start, end)
			case len(de.Key()) == 1 && !header:
				key = joinKey(tableBefore(b, start), key)
			}
		}
		if key == "" {
			key = "(document)"
		}
		return &ConfigError{Key: key, Line: line, Problem: decodeProblem(de)}
	}
	return &ConfigError{Key: "(document)", Problem: strings.TrimPrefix(err.Error(), "toml: ")}
}

// dottedKey writes a key path as TOML does: bare parts as they are, others (empty, with a
// dot or a space) quoted.
func dottedKey(parts []string) string {
	out := make([]string, len(parts))
	for i, k := range parts {
		bare := k != "" && strings.IndexFunc(k, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
		}) < 0
		if bare {
			out[i] = k
		} else {
			out[i] = strconv.Quote(k)
		}
	}
	return strings.Join(out, ".")
}

// tomlTypeRE picks the TOML type out of go-toml's "cannot decode TOML integer into struct
// field <Go type dump>.Field of type string".
var tomlTypeRE = regexp.MustCompile(`^toml: cannot decode TOML (\w+) into `)

// decodeProblem says what a key should hold in the operator's words ("expected a string, not
// an integer") instead of go-toml's dump of the Go struct it decodes into.
func decodeProblem(de *toml.DecodeError) string {
	msg := de.Error()
	m := tomlTypeRE.FindStringSubmatch(msg)
	if m == nil {
		return strings.TrimPrefix(msg, "toml: ")
	}
	got := tomlTypeNames[m[1]]
	if got == "" {
		got = "a " + m[1]
	}
	want := "another type"
	if t, ok := rawKeyType(de.Key()); ok {
		want = expectedType(t)
	}
	return fmt.Sprintf("expected %s, not %s", want, got)
}

var tomlTypeNames = map[string]string{
	"string": "a string", "integer": "an integer", "float": "a number with a fraction",
	"boolean": "a boolean", "array": "a list", "table": "a table", "datetime": "a date-time",
	"inline": "an inline table",
}

// rawKeyType is the Go type rawConfig decodes the dotted key into.
func rawKeyType(key []string) (reflect.Type, bool) {
	t := reflect.TypeOf(rawConfig{})
	for _, k := range key {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil, false
		}
		f, ok := fieldByTag(t, k)
		if !ok {
			return nil, false
		}
		t = f.Type
	}
	return t, len(key) > 0
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("toml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// expectedType describes a rawConfig field's type as TOML.
func expectedType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct:
		return "a table"
	case reflect.Slice:
		e := t.Elem()
		for e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
		switch e.Kind() {
		case reflect.Struct:
			return "a list of tables"
		case reflect.String:
			return "a list of strings"
		}
		return "a list"
	}
	return "another type"
}

// joinCapped joins at most maxReported errors and counts the others, so that a generated
// file with thousands of bad entries gives a readable answer.
func joinCapped(errs []error) error {
	if len(errs) > maxReported {
		n := len(errs) - maxReported
		errs = append(errs[:maxReported:maxReported], &ConfigError{Key: "(document)", Problem: fmt.Sprintf("and %d more problems", n)})
	}
	return errors.Join(errs...)
}

// problems collects validation failures so that all of them are reported at once.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, &ConfigError{Key: key, Problem: fmt.Sprintf(format, args...)})
}

// duration parses an optional duration key, checks its range and returns def when absent.
func (p *problems) duration(key string, v *string, def, lo, hi time.Duration) time.Duration {
	if v == nil {
		return def
	}
	d, err := time.ParseDuration(*v)
	switch {
	case err != nil:
		p.add(key, "%q is not a duration (for example %q)", *v, def.String())
	case d < lo || d > hi:
		p.add(key, "%s is out of range %s..%s", d, lo, hi)
	default:
		return d
	}
	return def
}

// listLen reports a list longer than max once, instead of one problem per entry: the
// entries are then not examined.
func (p *problems) listLen(key string, n, max int, why string) bool {
	if n > max {
		p.add(key, "%d entries; at most %d (%s)", n, max, why)
		return false
	}
	return true
}

// validate checks each section in turn; a section that depends on another (the owner rule
// needs node.address, sync.peer defaults from redundancy.peer) is given the checked values.
func (r *rawConfig) validate() (*Config, error) {
	var p problems
	cfg := &Config{}
	cfg.Node = validateNode(&p, &r.Node)
	cfg.Redundancy = validateRedundancy(&p, &r.Redundancy, cfg.Node)
	cfg.Redundancy.Groups = validateGroups(&p, r.Redundancy.Groups, &r.Redundancy, cfg.Node, cfg.Redundancy)
	cfg.Berofos = validateBerofos(&p, &r.Berofos)
	cfg.Sync = validateSync(&p, &r.Sync, cfg.Node, cfg.Redundancy)
	cfg.API = validateAPI(&p, &r.API, cfg.Sync, cfg.Node)
	cfg.Peer = validatePeerLink(&p, &r.Peer, cfg.Redundancy, cfg.Sync)
	cfg.Console = validateConsole(&p, &r.Console, cfg)
	if p.listLen("notify", len(r.Notify), 32, "notification channels") && len(r.Notify) > 0 {
		cfg.Notify = validateNotifications(r.Notify, &p)
	}
	if p.listLen("service", len(r.Services), MaxServices, "services on one node") {
		if len(r.Services) > 0 {
			cfg.Services = validateServices(r.Services, &p)
		}
	}
	if len(p) > 0 {
		return nil, joinCapped(p)
	}
	return cfg, nil
}

func validateNode(p *problems, r *rawNode) NodeConfig {
	var n NodeConfig
	switch {
	case r.ID != nil:
		n.ID = strings.TrimSpace(*r.ID)
		switch {
		case n.ID == "":
			p.add("node.id", "must not be empty (leave it out to use the hostname)")
		case len(n.ID) > 64 || strings.IndexFunc(n.ID, unicode.IsControl) >= 0:
			p.add("node.id", "%.70q: want at most 64 characters, no control characters", n.ID)
		}
	default:
		if h, err := os.Hostname(); err == nil && h != "" {
			n.ID = h
		} else {
			p.add("node.id", "not set and the hostname is unknown")
		}
	}
	n.Interface = r.Interface
	if n.Interface == "" {
		p.add("node.interface", "is required: the interface that carries the virtual IPs")
	} else if !validInterfaceName(n.Interface) {
		p.add("node.interface", "%.40q is not an interface name (1 to 15 printable characters, no space, '/' or ':')", n.Interface)
	}
	if r.Address == "" {
		p.add("node.address", "is required: this node's own fixed IPv4 address")
	} else if a, err := netip.ParseAddr(r.Address); err != nil || !a.Is4() {
		p.add("node.address", "%.60q is not an IPv4 address", r.Address)
	} else {
		n.Address = a // its class is checked with redundancy.allow_link_local
	}
	n.StateDir = DefaultStateDir
	if r.StateDir != nil {
		n.StateDir = *r.StateDir
		if !filepath.IsAbs(n.StateDir) || strings.IndexFunc(n.StateDir, unicode.IsControl) >= 0 {
			p.add("node.state_dir", "%.80q must be an absolute path", n.StateDir)
		}
	}
	return n
}

// validInterfaceName applies the kernel's rule for a link name (dev_valid_name: under
// IFNAMSIZ, not "." or "..", no '/', ':' or white space), restricted to printable ASCII so
// that a name copied with a newline or a non-breaking space is caught here and not by
// netlink at start-up.
func validInterfaceName(s string) bool {
	if len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' {
			return false
		}
	}
	return true
}

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")   // RFC 1122 section 3.2.1.3
	reserved    = netip.MustParsePrefix("240.0.0.0/4") // RFC 1112 section 4, and the broadcast
)

// addrProblem says why a is not usable as a host's or a virtual router's unicast address,
// or "" when it is.
func addrProblem(a netip.Addr, allowLinkLocal bool) string {
	switch {
	case thisNetwork.Contains(a):
		return "is in 0.0.0.0/8 (\"this network\", RFC 1122 section 3.2.1.3), never a host's address"
	case a.IsLoopback():
		return "is a loopback address (127.0.0.0/8): it never leaves the host"
	case a.IsMulticast():
		return "is a multicast address (224.0.0.0/4)"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "is the limited broadcast address"
	case reserved.Contains(a):
		return "is in the reserved 240.0.0.0/4 (RFC 1112 section 4)"
	case a.IsLinkLocalUnicast() && !allowLinkLocal:
		return "is link-local (169.254.0.0/16, RFC 3927), which no router forwards; set redundancy.allow_link_local = true if that is intended"
	}
	return ""
}

func validateRedundancy(p *problems, r *rawRedundancy, node NodeConfig) RedundancyConfig {
	rc := RedundancyConfig{
		Enabled:        r.Enabled == nil || *r.Enabled,
		Preempt:        r.Preempt != nil && *r.Preempt,
		AllowLinkLocal: r.AllowLinkLocal != nil && *r.AllowLinkLocal,
		Unicast:        r.Unicast != nil && *r.Unicast,
		VirtualMAC:     r.VirtualMAC != nil && *r.VirtualMAC,
		NARouter:       r.NARouter != nil && *r.NARouter,
	}
	if node.Address.IsValid() {
		if why := addrProblem(node.Address, rc.AllowLinkLocal); why != "" {
			p.add("node.address", "%s %s", node.Address, why)
		}
	}
	rc.GroupID = validateVRID(p, r.GroupID, rc.Enabled)
	rc.Priority = validatePriority(p, r.Priority)
	rc.Version = validateVersion(p, r.Version)
	rc.AdvertInterval = validateAdvertInterval(p, r.AdvertInterval, rc.Version)
	rc.Peer = validatePeer(p, r.Peer, node, rc.AllowLinkLocal)
	if rc.Unicast && r.Peer == nil {
		p.add("redundancy.peer", "is required when unicast = true")
	}
	rc.VirtualIPs = validateVirtualIPs(p, r.VirtualIPs, rc)
	if rc.Enabled && len(r.VirtualIPs) == 0 {
		p.add("redundancy.virtual_ips", "at least one virtual IP is required")
	}
	checkIPv6Group(p, rc)
	checkOwner(p, rc, node)
	rc.GARPCount = DefaultGARPCount
	if r.GARPCount != nil {
		if *r.GARPCount < 1 || *r.GARPCount > 100 {
			p.add("redundancy.garp_count", "%d is out of range 1..100 (the new Master must announce itself at least once)", *r.GARPCount)
		} else {
			rc.GARPCount = int(*r.GARPCount)
		}
	}
	// The engine takes 0 for "the default", so the smallest gap it can be given is 1ms; 10ms
	// is what a switch's ARP handling can tell apart.
	rc.GARPInterval = p.duration("redundancy.garp_interval", r.GARPInterval, DefaultGARPInterval, 10*time.Millisecond, time.Minute)
	rc.GARPRefresh = validateGARPRefresh(p, r.GARPRefresh)
	rc.BackupMode = ModeActive
	if r.BackupMode != nil {
		m, err := ParseBackupMode(*r.BackupMode)
		if err != nil {
			p.add("redundancy.backup_mode", "%v", err)
		}
		rc.BackupMode = m
	}
	rc.Notify = validateNotify(r.Notify, p)
	return rc
}

// validateGARPRefresh reads redundancy.garp_refresh: "0" (the default) for none, else a period
// of 1s..1h. Under a second it would be a flood on a busy segment (keepalived's
// garp_master_refresh counts in seconds too); beyond an hour no ARP cache still waits for it.
func validateGARPRefresh(p *problems, v *string) time.Duration {
	if v == nil {
		return 0
	}
	if d, err := time.ParseDuration(*v); err == nil && d == 0 {
		return 0
	}
	return p.duration("redundancy.garp_refresh", v, 0, time.Second, time.Hour)
}

func validateVRID(p *problems, v *int64, enabled bool) uint8 {
	switch {
	case v == nil:
		if enabled {
			p.add("redundancy.group_id", "is required: the VRID (1..255) shared by every node of the group")
		}
	case *v < 1 || *v > 255:
		p.add("redundancy.group_id", "%d is out of range 1..255", *v)
	default:
		return uint8(*v)
	}
	return 0
}

func validatePriority(p *problems, v *int64) uint8 {
	if v == nil {
		return DefaultPriority
	}
	if *v < 1 || *v > 255 {
		p.add("redundancy.priority", "%d is out of range 1..255 (0 is reserved for a resigning Master)", *v)
		return DefaultPriority
	}
	return uint8(*v)
}

// validateVersion: the VRRP version, 2 (the default) or 3.
func validateVersion(p *problems, v *int64) uint8 {
	if v == nil {
		return 2
	}
	if *v != 2 && *v != 3 {
		p.add("redundancy.version", "%d is not a VRRP version this node speaks: 2 (RFC 3768) or 3 (RFC 9568)", *v)
		return 2
	}
	return uint8(*v)
}

// validateAdvertInterval: what the version's advert carries, whole seconds 1..255 for
// version 2 (RFC 3768 section 5.3.7), centiseconds 10ms..40.95s for version 3 (RFC 9568
// section 5.2.7).
func validateAdvertInterval(p *problems, v *string, version uint8) time.Duration {
	if v == nil {
		return DefaultAdvertInterval
	}
	d, err := time.ParseDuration(*v)
	switch {
	case err != nil:
		p.add("redundancy.advert_interval", "%q is not a duration (for example \"1s\")", *v)
	case version == 3 && (d < vrrp.MinIntervalV3 || d > vrrp.MaxIntervalV3 || d%vrrp.MinIntervalV3 != 0):
		p.add("redundancy.advert_interval", "%s must be a multiple of 10ms from 10ms to 40.95s with version = 3 (RFC 9568 section 5.2.7)", d)
	case version == 2 && (d < time.Second || d > 255*time.Second || d%time.Second != 0):
		p.add("redundancy.advert_interval", "%s must be a whole number of seconds from 1s to 255s with version = 2 (RFC 3768 section 5.3.7); version = 3 allows 10ms steps", d)
	default:
		return d
	}
	return DefaultAdvertInterval
}

// checkOwner applies RFC 3768 section 5.3.4: priority 255 is the address owner's, the node
// whose own address is a virtual IP, and only the owner lists its own address.
func checkOwner(p *problems, rc RedundancyConfig, node NodeConfig) {
	if !node.Address.IsValid() {
		return
	}
	owner := slices.ContainsFunc(rc.VirtualIPs, func(v netip.Prefix) bool { return v.Addr() == node.Address })
	if rc.Priority == 255 && !owner {
		p.add("redundancy.priority", "255 is for the address owner only, and node.address %s is not among virtual_ips (RFC 3768 section 5.3.4)", node.Address)
	}
	if owner && rc.Priority != 255 {
		p.add("redundancy.virtual_ips", "contains node.address %s: only the owner (priority 255) may list its own address", node.Address)
	}
}

func validatePeer(p *problems, s *string, node NodeConfig, allowLinkLocal bool) netip.Addr {
	if s == nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(*s)
	switch {
	case err != nil || !a.Is4():
		p.add("redundancy.peer", "%.60q is not an IPv4 address", *s)
	case a == node.Address:
		p.add("redundancy.peer", "%s is this node's own address", a)
	default:
		if why := addrProblem(a, allowLinkLocal); why != "" {
			p.add("redundancy.peer", "%s %s", a, why)
			break
		}
		return a
	}
	return netip.Addr{}
}

// validateVirtualIPs checks each entry: an IPv4 host address with a prefix length, not a
// special address, not the network or broadcast address of its prefix, listed once, and not
// the peer's own address (this node's gratuitous ARP would take it from the peer).
func validateVirtualIPs(p *problems, list []string, rc RedundancyConfig) []netip.Prefix {
	if !p.listLen("redundancy.virtual_ips", len(list), MaxVirtualIPs, "an advert carries at most 255 addresses") {
		return nil
	}
	var out []netip.Prefix
	seen := map[netip.Addr]int{}
	for i, s := range list {
		key := fmt.Sprintf("redundancy.virtual_ips[%d]", i)
		v, ok := virtualIP(p, key, s, rc)
		if !ok {
			continue
		}
		if len(out) > 0 && out[0].Addr().Is6() != v.Addr().Is6() {
			p.add(key, "%s is not of the family of virtual_ips[%d] %s: a group carries IPv4 or IPv6 addresses, not both (RFC 9568 section 5.2.9); use keepalived-style separate groups", v, seen[out[0].Addr()], out[0])
			continue
		}
		if j, dup := seen[v.Addr()]; dup {
			p.add(key, "%s is listed twice (also redundancy.virtual_ips[%d])", v.Addr(), j)
			continue
		}
		seen[v.Addr()] = i
		if rc.Peer.IsValid() && v.Addr() == rc.Peer {
			p.add(key, "%s is redundancy.peer's own address: as Master this node would take it from the peer with gratuitous ARP", v.Addr())
			continue
		}
		out = append(out, v)
	}
	return out
}

func virtualIP(p *problems, key, s string, rc RedundancyConfig) (netip.Prefix, bool) {
	allowLinkLocal := rc.AllowLinkLocal
	v, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		switch {
		case aerr == nil && a.Is4():
			p.add(key, "%q has no prefix length (write it as %s/24, say)", s, s)
		case aerr == nil && a.Is6() && a.Zone() == "":
			p.add(key, "%q has no prefix length (write it as %s/64, say)", s, s)
		default:
			p.add(key, "%.60q is not an IP address with prefix length", s)
		}
		return v, false
	}
	a := v.Addr()
	switch {
	case a.Is6() && rc.Version != 3:
		p.add(key, "%q is IPv6, which VRRPv2 (RFC 3768) cannot carry: set redundancy.version = 3 (RFC 9568)", s)
	case a.Is6():
		return virtualIP6(p, key, v)
	case v.Bits() == 0:
		p.add(key, "%q: prefix length 0 is not allowed", s)
	case addrProblem(a, allowLinkLocal) != "":
		p.add(key, "%s %s", a, addrProblem(a, allowLinkLocal))
	case v.Bits() <= 30 && a == v.Masked().Addr():
		p.add(key, "%s is the network address of %s, not a host address", a, v.Masked())
	case v.Bits() <= 30 && a == lastAddr(v):
		p.add(key, "%s is the broadcast address of %s, not a host address", a, v.Masked())
	default:
		return v, true
	}
	return v, false
}

// virtualIP6 checks an IPv6 virtual address: a unicast host address, not IPv4-mapped (that is
// an IPv4 address in disguise) and not the Subnet-Router anycast address of its prefix (RFC
// 4291 section 2.6.1), which routers answer for.
func virtualIP6(p *problems, key string, v netip.Prefix) (netip.Prefix, bool) {
	a := v.Addr()
	switch {
	case a.Is4In6():
		p.add(key, "%s is an IPv4-mapped address; write the IPv4 address itself", v)
	case a.IsUnspecified() || a.IsLoopback():
		p.add(key, "%s is the unspecified or the loopback address", v)
	case a.IsMulticast():
		p.add(key, "%s is a multicast address (ff00::/8)", v)
	case v.Bits() == 0:
		p.add(key, "%s: prefix length 0 is not allowed", v)
	case v.Bits() < 127 && a == v.Masked().Addr():
		p.add(key, "%s is the Subnet-Router anycast address of %s (RFC 4291 section 2.6.1), not a host address", a, v.Masked())
	default:
		return v, true
	}
	return v, false
}

// checkIPv6Group applies what an IPv6 group needs (RFC 9568): its link-local virtual address
// first (section 5.2.9), multicast adverts (redundancy.peer is the IPv4 peer the sync and the
// peer link use), and na_router = true only where there are Neighbor Advertisements to send.
func checkIPv6Group(p *problems, rc RedundancyConfig) {
	if len(rc.VirtualIPs) == 0 || !rc.VirtualIPs[0].Addr().Is6() {
		if rc.NARouter {
			p.add("redundancy.na_router", "applies to IPv6 virtual IPs only (an IPv4 group sends gratuitous ARP, which has no Router flag)")
		}
		return
	}
	if first := rc.VirtualIPs[0]; !first.Addr().IsLinkLocalUnicast() {
		p.add("redundancy.virtual_ips[0]", "%s: the first address of an IPv6 group must be its link-local virtual address, for example \"fe80::1/64\" (RFC 9568 section 5.2.9)", first)
	}
	if rc.Unicast {
		p.add("redundancy.unicast", "is not available for IPv6 virtual IPs yet: redundancy.peer is an IPv4 address; use multicast (ff02::12)")
	}
}

// lastAddr is the highest address of an IPv4 prefix: its directed broadcast address.
func lastAddr(v netip.Prefix) netip.Addr {
	b := v.Masked().Addr().As4()
	host := ^uint32(0) >> v.Bits()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= host
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func validateBerofos(p *problems, r *rawBerofos) BerofosConfig {
	bc := BerofosConfig{
		Enabled:   r.Enabled != nil && *r.Enabled,
		Conf:      DefaultBerofosConf,
		LinesMode: -1,
		Bypass:    r.Bypass != nil && *r.Bypass,
	}
	if r.Conf != nil {
		bc.Conf = *r.Conf
		if !filepath.IsAbs(bc.Conf) || strings.IndexFunc(bc.Conf, unicode.IsControl) >= 0 {
			p.add("berofos.conf", "%.80q must be an absolute path", bc.Conf)
		}
	}
	if p.listLen("berofos.devices", len(r.Devices), MaxBerofosDevices, "sections of berofos.conf") {
		seen := map[string]int{}
		for i, d := range r.Devices {
			key := fmt.Sprintf("berofos.devices[%d]", i)
			if j, dup := seen[d]; dup {
				p.add(key, "%q is listed twice (also berofos.devices[%d])", d, j)
				continue
			}
			seen[d] = i
			if !validDeviceName(d) {
				p.add(key, "%.70q is not a berofos.conf section name (fos1, fos2, ...)", d)
				continue
			}
			bc.Devices = append(bc.Devices, d)
		}
	}
	switch {
	case r.LinesMode == nil:
		if bc.Enabled {
			p.add("berofos.lines_mode", "is required: 1 when this node is wired to port B, 0 when wired to port D")
		}
	case *r.LinesMode != 0 && *r.LinesMode != 1:
		p.add("berofos.lines_mode", "%d: want 1 (this node is wired to port B) or 0 (port D)", *r.LinesMode)
	default:
		bc.LinesMode = int(*r.LinesMode)
	}
	bc.KickInterval = p.duration("berofos.kick_interval", r.KickInterval, DefaultKickInterval, 100*time.Millisecond, time.Hour)
	bc.Timeout = p.duration("berofos.timeout", r.Timeout, DefaultBerofosTimeout, 10*time.Millisecond, time.Minute)
	bc.PollInterval = p.duration("berofos.poll_interval", r.PollInterval, DefaultPollInterval, 100*time.Millisecond, time.Hour)
	return bc
}

// validDeviceName is bnfos.conf's rule for a section name (berofos.ParseConf applies it).
func validDeviceName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.')
	}) < 0
}

func validateSync(p *problems, r *rawSync, node NodeConfig, red RedundancyConfig) SyncConfig {
	sc := SyncConfig{
		Enabled:   r.Enabled != nil && *r.Enabled,
		Listen:    DefaultSyncListen,
		Interval:  "60s",
		Watch:     r.Watch != nil && *r.Watch,
		MaxDelete: DefaultMaxDelete,
	}
	sc.Paths = validateSyncPaths(p, r.Paths, node)
	if sc.Enabled && len(r.Paths) == 0 {
		p.add("sync.paths", "at least one tree is required, e.g. [\"/etc/asterisk\", \"/var/spool/asterisk/voicemail\"]")
	}
	if r.Listen != nil {
		sc.Listen = *r.Listen
	}
	port, err := listenPort(sc.Listen)
	if err != nil {
		p.add("sync.listen", "%.60q: %v (for example \":7401\" or \"192.0.2.11:7401\")", sc.Listen, err)
	}
	switch {
	case r.Peer != nil:
		sc.Peer = *r.Peer
		if err := checkHostPort(sc.Peer); err != nil {
			p.add("sync.peer", "%.60q: %v (for example \"192.0.2.12:7401\")", sc.Peer, err)
		}
	case red.Peer.IsValid():
		if port != 0 { // else sync.listen is reported
			sc.Peer = netip.AddrPortFrom(red.Peer, port).String()
		}
	case sc.Enabled:
		p.add("sync.peer", "is required when redundancy.peer is not set")
	}
	switch {
	case r.PeerFingerprint != nil:
		fp, err := pbxsync.ParseFingerprint(*r.PeerFingerprint)
		if err != nil {
			p.add("sync.peer_fingerprint", "%.80q: want the 64 hex digits `redundantd -fingerprint` prints on the peer", *r.PeerFingerprint)
		}
		sc.PeerFingerprint = fp
	case sc.Enabled:
		p.add("sync.peer_fingerprint", "is required: run `redundantd -fingerprint` on the peer and paste its answer here")
	}
	if r.Interval != nil {
		sc.Interval = *r.Interval
		if err := pbxsync.CheckInterval(sc.Interval); err != nil {
			p.add("sync.interval", "%.60q: want a duration of at least 1s (\"60s\") or a cron spec (\"*/5 * * * *\", \"@hourly\"): %v", sc.Interval, err)
		}
	}
	// The replication takes 0 for "the default", so "keep nothing" cannot be asked for.
	sc.TrashRetention = p.duration("sync.trash_retention", r.TrashRetention, DefaultTrashRetention, time.Minute, 10*365*24*time.Hour)
	if r.MaxDelete != nil {
		if !(*r.MaxDelete > 0 && *r.MaxDelete <= 1) {
			p.add("sync.max_delete", "%v: want a share in (0, 1], e.g. 0.2 = a run may delete at most 20%% of the files", *r.MaxDelete)
		} else {
			sc.MaxDelete = *r.MaxDelete
		}
	}
	return sc
}

// validateSyncPaths applies the replication's rules: clean absolute trees other than /, each
// listed once, none inside another, and the node's sync state outside all of them.
func validateSyncPaths(p *problems, paths []string, node NodeConfig) []string {
	if !p.listLen("sync.paths", len(paths), MaxSyncPaths, "the sync protocol numbers the trees") {
		return nil
	}
	var out []string
	for i, s := range paths {
		key := fmt.Sprintf("sync.paths[%d]", i)
		if !filepath.IsAbs(s) || filepath.Clean(s) != s || s == "/" || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			p.add(key, "%.80q: want a clean absolute path other than /", s)
			continue
		}
		bad := false
		for j, q := range paths[:i] {
			switch {
			case q == s:
				p.add(key, "%q is listed twice (also sync.paths[%d])", s, j)
				bad = true
			case within(q, s):
				p.add(key, "%q is inside sync.paths[%d] %q", s, j, q)
				bad = true
			case within(s, q):
				p.add(key, "%q contains sync.paths[%d] %q", s, j, q)
				bad = true
			}
			if bad {
				break
			}
		}
		if bad {
			continue
		}
		if dir := filepath.Join(node.StateDir, "sync"); filepath.IsAbs(node.StateDir) && (dir == s || within(s, dir)) {
			p.add(key, "%q contains node.state_dir's sync state %s: the manifest and trash would replicate themselves", s, dir)
			continue
		}
		out = append(out, s)
	}
	return out
}

// within reports whether path p lies strictly inside dir (both clean and absolute).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && filepath.IsLocal(rel)
}

// listenPort checks a listen address: an optional IP literal (empty for every address) and
// a port 1..65535, which it returns.
func listenPort(s string) (uint16, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return 0, errors.New("not host:port")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return 0, errors.New("the port must be 1..65535")
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return 0, errors.New("the host must be an IP address, or empty for every address")
		}
	}
	return uint16(n), nil
}

// checkHostPort checks a peer address: a host (IP or DNS name) and a port 1..65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return errors.New("the port must be 1..65535")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if host == "" || len(host) > 253 || strings.IndexFunc(host, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
	}) >= 0 {
		return errors.New("the host must be an IP address or a DNS name")
	}
	return nil
}

func validateAPI(p *problems, r *rawAPI, sc SyncConfig, node NodeConfig) APIConfig {
	api := APIConfig{Listen: DefaultAPIListen, TokenFile: filepath.Join(node.StateDir, "api.token")}
	if r.Listen != nil {
		api.Listen = *r.Listen
	}
	if r.TokenFile != nil {
		api.TokenFile = *r.TokenFile
		if !filepath.IsAbs(api.TokenFile) {
			p.add("api.token_file", "%.60q must be an absolute path", api.TokenFile)
		}
	}
	if p.listLen("api.names", len(r.Names), 16, "host names") {
		for i, n := range r.Names {
			if n == "" || len(n) > 253 || strings.ContainsAny(n, " /:@\t\n") {
				p.add(fmt.Sprintf("api.names[%d]", i), "%.60q is not a host name", n)
			}
		}
		api.Names = r.Names
	}
	ap, err := netip.ParseAddrPort(api.Listen)
	switch {
	case err != nil:
		p.add("api.listen", "%.60q is not an address:port (for example \"127.0.0.1:7400\")", api.Listen)
	case ap.Port() == 0:
		p.add("api.listen", "%q needs a port", api.Listen)
	case sc.Enabled && sharesPort(ap, sc.Listen):
		p.add("api.listen", "%s and sync.listen %q would listen on the same port", api.Listen, sc.Listen)
	}
	return api
}

// sharesPort reports whether the API address and the sync listen address would collide.
func sharesPort(api netip.AddrPort, syncListen string) bool {
	host, port, err := net.SplitHostPort(syncListen)
	if err != nil || port != strconv.Itoa(int(api.Port())) {
		return false
	}
	if host == "" || api.Addr().IsUnspecified() {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && (a.IsUnspecified() || a == api.Addr())
}

// checkFiles checks what the daemon reads at start-up besides the configuration: the
// berofos device list, the console's users and certificate, and this node's sync
// certificate against the pinned peer's.
func checkFiles(cfg *Config) error {
	var p problems
	if cfg.Berofos.Enabled {
		checkBerofosConf(&p, cfg.Berofos)
	}
	checkConsoleFiles(&p, cfg.Console)
	if cfg.Sync.Enabled {
		fp, err := pbxsync.StoredFingerprint(SyncStateDir(cfg))
		switch {
		case err == nil && fp == cfg.Sync.PeerFingerprint:
			p.add("sync.peer_fingerprint", "is this node's own certificate (%s): paste the one `redundantd -fingerprint` prints on the peer", SyncStateDir(cfg))
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			p.add("node.state_dir", "this node's sync certificate: %v", err)
		}
	}
	if len(p) > 0 {
		return joinCapped(p)
	}
	return nil
}

// checkBerofosConf mirrors what the berofos part and its controller check at start-up.
func checkBerofosConf(p *problems, bc BerofosConfig) {
	all, err := berofos.LoadConf(bc.Conf)
	if err != nil {
		p.add("berofos.conf", "%v", err)
		return
	}
	devs := all
	if len(bc.Devices) > 0 {
		devs = nil
		for i, name := range bc.Devices {
			d, err := berofos.FindDevice(all, name)
			if err != nil {
				p.add(fmt.Sprintf("berofos.devices[%d]", i), "%s: %v", bc.Conf, err)
				continue
			}
			devs = append(devs, d)
		}
	}
	if len(all) == 0 {
		p.add("berofos.conf", "%s lists no device (write it with `redundantctl berofos scan -x`)", bc.Conf)
	}
	for _, d := range devs {
		if err := d.Validate(); err != nil {
			p.add("berofos.conf", "%s: %v", bc.Conf, err)
		}
		if bc.Bypass && len(d.MAC) != 6 {
			p.add("berofos.bypass", "kicking the watchdog needs the mac of [%s] in %s", d.Name, bc.Conf)
		}
	}
}
