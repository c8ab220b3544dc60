package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
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
	Enabled        bool
	GroupID        uint8 // the VRID
	Priority       uint8
	AdvertInterval time.Duration
	// Preempt lets a higher-priority node take the Master role from a healthy Master. Off by
	// default: the node that came up first stays Master and a returning node is Backup.
	Preempt      bool
	VirtualIPs   []netip.Prefix
	Peer         netip.Addr // the other node's fixed address; required when Unicast
	Unicast      bool
	VirtualMAC   bool
	GARPCount    int
	GARPInterval time.Duration
}

// APIConfig is the HTTP API used by redundantctl and monitoring.
type APIConfig struct {
	Listen string
}

// rawConfig mirrors the TOML file. Optional keys are pointers so that "absent" and "zero"
// can be told apart when defaults are applied.
type rawConfig struct {
	Node struct {
		ID        *string `toml:"id"`
		Interface string  `toml:"interface"`
		Address   string  `toml:"address"`
		StateDir  *string `toml:"state_dir"`
	} `toml:"node"`
	Redundancy struct {
		Enabled        *bool    `toml:"enabled"`
		GroupID        *int64   `toml:"group_id"`
		Priority       *int64   `toml:"priority"`
		AdvertInterval *string  `toml:"advert_interval"`
		Preempt        *bool    `toml:"preempt"`
		VirtualIPs     []string `toml:"virtual_ips"`
		Peer           *string  `toml:"peer"`
		Unicast        *bool    `toml:"unicast"`
		VirtualMAC     *bool    `toml:"virtual_mac"`
		GARPCount      *int64   `toml:"garp_count"`
		GARPInterval   *string  `toml:"garp_interval"`
	} `toml:"redundancy"`
	Berofos struct {
		Enabled      *bool    `toml:"enabled"`
		Conf         *string  `toml:"conf"`
		Devices      []string `toml:"devices"`
		LinesMode    *int64   `toml:"lines_mode"`
		Bypass       *bool    `toml:"bypass"`
		KickInterval *string  `toml:"kick_interval"`
		Timeout      *string  `toml:"timeout"`
		PollInterval *string  `toml:"poll_interval"`
	} `toml:"berofos"`
	Sync struct {
		Enabled         *bool    `toml:"enabled"`
		Paths           []string `toml:"paths"`
		Listen          *string  `toml:"listen"`
		Peer            *string  `toml:"peer"`
		PeerFingerprint *string  `toml:"peer_fingerprint"`
		Interval        *string  `toml:"interval"`
		Watch           *bool    `toml:"watch"`
		TrashRetention  *string  `toml:"trash_retention"`
		MaxDelete       *float64 `toml:"max_delete"`
	} `toml:"sync"`
	API struct {
		Listen *string `toml:"listen"`
	} `toml:"api"`
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

// LoadConfig reads and validates the TOML file at path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig strictly decodes a TOML document (unknown keys are errors) and validates it,
// reporting every problem found, each with its key.
func ParseConfig(b []byte) (*Config, error) {
	var raw rawConfig
	dec := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, decodeError(err)
	}
	return raw.validate()
}

// decodeError turns go-toml's errors into ConfigErrors that name the key.
func decodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, _ := e.Position()
			errs = append(errs, &ConfigError{Key: strings.Join(e.Key(), "."), Line: line, Problem: "unknown key"})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		if key == "" {
			key = "(document)"
		}
		return &ConfigError{Key: key, Line: line, Problem: de.Error()}
	}
	return &ConfigError{Key: "(document)", Problem: err.Error()}
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

func (r *rawConfig) validate() (*Config, error) {
	var errs problems
	cfg := &Config{}

	// [node]
	n := &cfg.Node
	if r.Node.ID != nil {
		n.ID = strings.TrimSpace(*r.Node.ID)
		if n.ID == "" {
			errs.add("node.id", "must not be empty (leave it out to use the hostname)")
		}
	} else if h, err := os.Hostname(); err == nil && h != "" {
		n.ID = h
	} else {
		errs.add("node.id", "not set and the hostname is unknown")
	}
	n.Interface = r.Node.Interface
	switch {
	case n.Interface == "":
		errs.add("node.interface", "is required: the interface that carries the virtual IPs")
	case len(n.Interface) > 15 || strings.ContainsAny(n.Interface, "/ \t"):
		errs.add("node.interface", "%q is not a valid interface name", n.Interface)
	}
	if r.Node.Address == "" {
		errs.add("node.address", "is required: this node's own fixed IPv4 address")
	} else if a, err := netip.ParseAddr(r.Node.Address); err != nil || !a.Is4() {
		errs.add("node.address", "%q is not an IPv4 address", r.Node.Address)
	} else {
		n.Address = a
	}
	n.StateDir = DefaultStateDir
	if r.Node.StateDir != nil {
		n.StateDir = *r.Node.StateDir
		if !strings.HasPrefix(n.StateDir, "/") {
			errs.add("node.state_dir", "%q must be an absolute path", n.StateDir)
		}
	}

	// [redundancy]
	rc := &cfg.Redundancy
	rd := &r.Redundancy
	rc.Enabled = rd.Enabled == nil || *rd.Enabled
	if rd.GroupID == nil {
		if rc.Enabled {
			errs.add("redundancy.group_id", "is required: the VRID (1..255) shared by every node of the group")
		}
	} else if *rd.GroupID < 1 || *rd.GroupID > 255 {
		errs.add("redundancy.group_id", "%d is out of range 1..255", *rd.GroupID)
	} else {
		rc.GroupID = uint8(*rd.GroupID)
	}
	rc.Priority = DefaultPriority
	if rd.Priority != nil {
		if *rd.Priority < 1 || *rd.Priority > 255 {
			errs.add("redundancy.priority", "%d is out of range 1..255 (0 is reserved for a resigning Master)", *rd.Priority)
		} else {
			rc.Priority = uint8(*rd.Priority)
		}
	}
	rc.AdvertInterval = DefaultAdvertInterval
	if rd.AdvertInterval != nil {
		d, err := time.ParseDuration(*rd.AdvertInterval)
		switch {
		case err != nil:
			errs.add("redundancy.advert_interval", "%q is not a duration (for example \"1s\")", *rd.AdvertInterval)
		case d < time.Second || d > 255*time.Second || d%time.Second != 0:
			errs.add("redundancy.advert_interval", "%s must be a whole number of seconds from 1s to 255s (RFC 3768 section 5.3.7)", d)
		default:
			rc.AdvertInterval = d
		}
	}
	rc.Preempt = rd.Preempt != nil && *rd.Preempt
	seen := map[netip.Addr]bool{}
	for i, s := range rd.VirtualIPs {
		key := fmt.Sprintf("redundancy.virtual_ips[%d]", i)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil && a.Is4() {
				errs.add(key, "%q has no prefix length (write it as %s/24, say)", s, s)
			} else {
				errs.add(key, "%q is not an IPv4 address with prefix length", s)
			}
			continue
		}
		if !p.Addr().Is4() {
			errs.add(key, "%q is not IPv4 (VRRPv2, RFC 3768, carries IPv4 only)", s)
			continue
		}
		if p.Bits() == 0 {
			errs.add(key, "%q: prefix length 0 is not allowed", s)
			continue
		}
		if seen[p.Addr()] {
			errs.add(key, "%s is listed twice", p.Addr())
			continue
		}
		seen[p.Addr()] = true
		rc.VirtualIPs = append(rc.VirtualIPs, p)
	}
	if rc.Enabled && len(rd.VirtualIPs) == 0 {
		errs.add("redundancy.virtual_ips", "at least one virtual IP is required")
	}
	if len(rc.VirtualIPs) > 255 {
		errs.add("redundancy.virtual_ips", "%d addresses; an advert carries at most 255", len(rc.VirtualIPs))
	}
	owner := n.Address.IsValid() && seen[n.Address]
	if rc.Priority == 255 && !owner && n.Address.IsValid() {
		errs.add("redundancy.priority", "255 is for the address owner only, and node.address %s is not among virtual_ips (RFC 3768 section 5.3.4)", n.Address)
	}
	if owner && rc.Priority != 255 {
		errs.add("redundancy.virtual_ips", "contains node.address %s: only the owner (priority 255) may list its own address", n.Address)
	}
	if rd.Peer != nil {
		a, err := netip.ParseAddr(*rd.Peer)
		switch {
		case err != nil || !a.Is4():
			errs.add("redundancy.peer", "%q is not an IPv4 address", *rd.Peer)
		case a == n.Address:
			errs.add("redundancy.peer", "%s is this node's own address", a)
		default:
			rc.Peer = a
		}
	}
	rc.Unicast = rd.Unicast != nil && *rd.Unicast
	if rc.Unicast && rd.Peer == nil {
		errs.add("redundancy.peer", "is required when unicast = true")
	}
	rc.VirtualMAC = rd.VirtualMAC != nil && *rd.VirtualMAC
	rc.GARPCount = DefaultGARPCount
	if rd.GARPCount != nil {
		if *rd.GARPCount < 1 || *rd.GARPCount > 100 {
			errs.add("redundancy.garp_count", "%d is out of range 1..100 (the new Master must announce itself at least once)", *rd.GARPCount)
		} else {
			rc.GARPCount = int(*rd.GARPCount)
		}
	}
	rc.GARPInterval = errs.duration("redundancy.garp_interval", rd.GARPInterval, DefaultGARPInterval, 0, time.Minute)

	// [berofos]
	bc, rb := &cfg.Berofos, &r.Berofos
	bc.Enabled = rb.Enabled != nil && *rb.Enabled
	bc.Conf = DefaultBerofosConf
	if rb.Conf != nil {
		bc.Conf = *rb.Conf
		if !strings.HasPrefix(bc.Conf, "/") {
			errs.add("berofos.conf", "%q must be an absolute path", bc.Conf)
		}
	}
	bc.Devices = rb.Devices
	bc.LinesMode = -1
	if rb.LinesMode != nil {
		if *rb.LinesMode != 0 && *rb.LinesMode != 1 {
			errs.add("berofos.lines_mode", "%d: want 1 (this node is wired to port B) or 0 (port D)", *rb.LinesMode)
		} else {
			bc.LinesMode = int(*rb.LinesMode)
		}
	} else if bc.Enabled {
		errs.add("berofos.lines_mode", "is required: 1 when this node is wired to port B, 0 when wired to port D")
	}
	bc.Bypass = rb.Bypass != nil && *rb.Bypass
	bc.KickInterval = errs.duration("berofos.kick_interval", rb.KickInterval, DefaultKickInterval, 100*time.Millisecond, time.Hour)
	bc.Timeout = errs.duration("berofos.timeout", rb.Timeout, DefaultBerofosTimeout, 10*time.Millisecond, time.Minute)
	bc.PollInterval = errs.duration("berofos.poll_interval", rb.PollInterval, DefaultPollInterval, 100*time.Millisecond, time.Hour)

	// [sync]
	sc, rs := &cfg.Sync, &r.Sync
	sc.Enabled = rs.Enabled != nil && *rs.Enabled
	for i, p := range rs.Paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
			errs.add(fmt.Sprintf("sync.paths[%d]", i), "%q: want a clean absolute path other than /", p)
		}
	}
	sc.Paths = rs.Paths
	if sc.Enabled && len(sc.Paths) == 0 {
		errs.add("sync.paths", "at least one tree is required, e.g. [\"/etc/asterisk\", \"/var/spool/asterisk/voicemail\"]")
	}
	sc.Listen = DefaultSyncListen
	if rs.Listen != nil {
		sc.Listen = *rs.Listen
	}
	_, port, err := net.SplitHostPort(sc.Listen)
	if err != nil || port == "" || port == "0" {
		errs.add("sync.listen", "%q is not host:port (for example \":7401\")", sc.Listen)
	}
	switch {
	case rs.Peer != nil:
		sc.Peer = *rs.Peer
		if _, _, err := net.SplitHostPort(sc.Peer); err != nil {
			errs.add("sync.peer", "%q is not host:port", sc.Peer)
		}
	case cfg.Redundancy.Peer.IsValid() && port != "":
		sc.Peer = net.JoinHostPort(cfg.Redundancy.Peer.String(), port)
	case sc.Enabled:
		errs.add("sync.peer", "is required when redundancy.peer is not set")
	}
	if rs.PeerFingerprint != nil {
		sc.PeerFingerprint = *rs.PeerFingerprint
	} else if sc.Enabled {
		errs.add("sync.peer_fingerprint", "is required: run `redundantd -fingerprint` on the peer and paste its answer here")
	}
	sc.Interval = "60s"
	if rs.Interval != nil {
		sc.Interval = *rs.Interval
	}
	sc.Watch = rs.Watch != nil && *rs.Watch
	sc.TrashRetention = errs.duration("sync.trash_retention", rs.TrashRetention, DefaultTrashRetention, 0, 10*365*24*time.Hour)
	sc.MaxDelete = DefaultMaxDelete
	if rs.MaxDelete != nil {
		if *rs.MaxDelete <= 0 || *rs.MaxDelete > 1 {
			errs.add("sync.max_delete", "%v: want a share in (0, 1], e.g. 0.2 = a run may delete at most 20%% of the files", *rs.MaxDelete)
		} else {
			sc.MaxDelete = *rs.MaxDelete
		}
	}

	// [api]
	cfg.API.Listen = DefaultAPIListen
	if r.API.Listen != nil {
		cfg.API.Listen = *r.API.Listen
		if ap, err := netip.ParseAddrPort(cfg.API.Listen); err != nil {
			errs.add("api.listen", "%q is not an address:port (for example \"127.0.0.1:7400\")", cfg.API.Listen)
		} else if ap.Port() == 0 {
			errs.add("api.listen", "%q needs a port", cfg.API.Listen)
		}
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}
