package appliance

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/bcrypt"
)

// ConsoleConfig is the web console ([console], docs/console.md): server-rendered pages on the
// API listener, behind a log-in with the users of UsersFile.
type ConsoleConfig struct {
	Enabled bool
	// UsersFile lists the operators, one "user:bcrypt-hash" a line (htpasswd -B writes it).
	UsersFile string
	// TLSCert and TLSKey, when set, make the API listener serve HTTPS (the console's cookie
	// is then Secure); both or neither.
	TLSCert string
	TLSKey  string
	// LockoutAttempts wrong passwords for one user within LockoutWindow lock that user out
	// until the window has passed since the first of them.
	LockoutAttempts int
	LockoutWindow   time.Duration
	// SessionIdle ends a session that has made no request for that long.
	SessionIdle time.Duration
	// BackupAccessPort is the seed's Backup Device GUI Access Port (section 6), 0 when off:
	// while this node is Master it forwards the connections to this port (on api.listen's
	// host) to BackupConsole, the other node's API listener, so operators reach both
	// consoles through the Master's address.
	BackupAccessPort int
	BackupConsole    string
}

type rawConsole struct {
	Enabled         *bool   `toml:"enabled"`
	UsersFile       *string `toml:"users_file"`
	TLSCert         *string `toml:"tls_cert"`
	TLSKey          *string `toml:"tls_key"`
	LockoutAttempts *int64  `toml:"lockout_attempts"`
	LockoutWindow   *string `toml:"lockout_window"`
	SessionIdle     *string `toml:"session_idle"`
	// BackupAccessPort: 0 turns the forwarding off.
	BackupAccessPort *int64  `toml:"backup_access_port"`
	BackupConsole    *string `toml:"backup_console"`
}

// Console defaults.
const (
	DefaultLockoutAttempts = 5
	DefaultLockoutWindow   = 15 * time.Minute
	DefaultSessionIdle     = 30 * time.Minute
	// MaxConsoleUsers bounds the users file: a console has a handful of operators.
	MaxConsoleUsers = 64
	// DefaultBackupAccessPort is the seed's example of the Backup Device GUI Access Port.
	DefaultBackupAccessPort = 7777
)

// validateConsole checks [console]. The files it names are read by checkConsoleFiles
// (LoadConfig), as the daemon reads them at start-up.
func validateConsole(p *problems, r *rawConsole, cfg *Config) ConsoleConfig {
	c := ConsoleConfig{LockoutAttempts: DefaultLockoutAttempts}
	if r.Enabled != nil {
		c.Enabled = *r.Enabled
	}
	path := func(key string, v *string) string {
		if v == nil {
			return ""
		}
		if !filepath.IsAbs(*v) || strings.IndexFunc(*v, unicode.IsControl) >= 0 {
			p.add(key, "%.80q must be an absolute path", *v)
		}
		return *v
	}
	c.UsersFile = path("console.users_file", r.UsersFile)
	c.TLSCert = path("console.tls_cert", r.TLSCert)
	c.TLSKey = path("console.tls_key", r.TLSKey)
	if c.Enabled && r.UsersFile == nil {
		p.add("console.enabled", "needs console.users_file (lines of user:bcrypt-hash, e.g. from `htpasswd -nB user`)")
	}
	switch {
	case r.TLSCert != nil && r.TLSKey == nil:
		p.add("console.tls_cert", "needs console.tls_key: set both or neither")
	case r.TLSCert == nil && r.TLSKey != nil:
		p.add("console.tls_key", "needs console.tls_cert: set both or neither")
	}
	if r.LockoutAttempts != nil {
		if n := *r.LockoutAttempts; n < 1 || n > 100 {
			p.add("console.lockout_attempts", "%d is out of range 1..100", n)
		} else {
			c.LockoutAttempts = int(n)
		}
	}
	c.LockoutWindow = p.duration("console.lockout_window", r.LockoutWindow, DefaultLockoutWindow, time.Minute, 24*time.Hour)
	c.SessionIdle = p.duration("console.session_idle", r.SessionIdle, DefaultSessionIdle, time.Minute, 24*time.Hour)
	c.BackupAccessPort, c.BackupConsole = validateBackupAccess(p, r, c.Enabled, cfg)
	return c
}

// validateBackupAccess checks the Backup Device GUI Access Port. It is on by default (port
// 7777) when the console is enabled and the peer's address is known; backup_access_port = 0
// turns it off. It listens on api.listen's host and forwards to backup_console, by default
// the peer's address (the host of peer.address, else redundancy.peer) with api.listen's port:
// the other node's console, when both nodes are configured alike.
func validateBackupAccess(p *problems, r *rawConsole, enabled bool, cfg *Config) (int, string) {
	_, apiPort, err := net.SplitHostPort(cfg.API.Listen)
	if err != nil {
		return 0, "" // reported by validateAPI
	}
	target := defaultBackupConsole(cfg, apiPort)
	if r.BackupConsole != nil {
		target = *r.BackupConsole
		if err := checkHostPort(target); err != nil {
			p.add("console.backup_console", "%.60q: %v (for example \"192.0.2.12:7400\")", target, err)
		}
	}
	port := int64(0)
	switch {
	case r.BackupAccessPort != nil:
		port = *r.BackupAccessPort
		if port < 0 || port > 65535 {
			p.add("console.backup_access_port", "%d is out of range 0..65535 (0 turns it off)", port)
			return 0, ""
		}
		if port != 0 && target == "" {
			p.add("console.backup_access_port", "needs the other node's console: set console.backup_console, peer.address or redundancy.peer")
		}
	case enabled && target != "":
		port = DefaultBackupAccessPort
	}
	if port == 0 || target == "" {
		return 0, target
	}
	for key, other := range map[string]string{"api.listen": cfg.API.Listen, "sync.listen": cfg.Sync.Listen, "peer.listen": cfg.Peer.Listen} {
		if _, op, err := net.SplitHostPort(other); err == nil && op == strconv.FormatInt(port, 10) &&
			(key == "api.listen" || (key == "sync.listen" && cfg.Sync.Enabled) || (key == "peer.listen" && cfg.Peer.Enabled)) {
			p.add("console.backup_access_port", "%d is the port of %s (%s)", port, key, other)
		}
	}
	return int(port), target
}

// backupAccessListen is the access port's address: api.listen's host and BackupAccessPort;
// "" when off.
func (c ConsoleConfig) backupAccessListen(apiListen string) string {
	host, _, err := net.SplitHostPort(apiListen)
	if c.BackupAccessPort == 0 || err != nil {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(c.BackupAccessPort))
}

// defaultBackupConsole is the peer's host with this node's API port; "" when the peer's
// address is not configured.
func defaultBackupConsole(cfg *Config, apiPort string) string {
	if host, _, err := net.SplitHostPort(cfg.Peer.Address); err == nil && host != "" {
		return net.JoinHostPort(host, apiPort)
	}
	if cfg.Redundancy.Peer.IsValid() {
		return net.JoinHostPort(cfg.Redundancy.Peer.String(), apiPort)
	}
	return ""
}

// TLS reports whether the API listener serves HTTPS.
func (c ConsoleConfig) TLS() bool { return c.TLSCert != "" }

// checkConsoleFiles reads what the console needs at start-up: the users file and the
// certificate. The API listener serves TLS whenever the certificate is set, also with the
// console off, so that is checked either way.
func checkConsoleFiles(p *problems, c ConsoleConfig) {
	if c.Enabled {
		if _, err := loadConsoleUsers(c.UsersFile); err != nil {
			p.add("console.users_file", "%v", err)
		}
	}
	if c.TLS() {
		if _, err := consoleTLS(c); err != nil {
			p.add("console.tls_cert", "%v", err)
		}
	}
}

// consoleTLS is the API listener's TLS configuration: the certificate and key files, TLS
// 1.2 at least.
func consoleTLS(c ConsoleConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("certificate %s, key %s: %w", c.TLSCert, c.TLSKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// ErrUsersFile wraps every problem of the console's users file.
var ErrUsersFile = errors.New("console users file")

// loadConsoleUsers reads the users file: "user:hash" lines, where hash is a bcrypt hash
// ($2a$, $2b$ or $2y$, as htpasswd -B writes); blank lines and lines starting with '#' are
// skipped. A file others can read or write is refused, as the API token is: the hashes are
// a target for offline guessing.
func loadConsoleUsers(path string) (map[string][]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsersFile, err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("%w: %s is open to others (mode %04o); chmod o= it", ErrUsersFile, path, fi.Mode().Perm())
	}
	if fi.Size() > 1<<20 {
		return nil, fmt.Errorf("%w: %s is larger than 1 MiB", ErrUsersFile, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsersFile, err)
	}
	return parseConsoleUsers(path, b)
}

func parseConsoleUsers(path string, b []byte) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || user == "":
			return nil, fmt.Errorf("%w: %s line %d: want user:bcrypt-hash", ErrUsersFile, path, n)
		case len(user) > 64 || strings.IndexFunc(user, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			return nil, fmt.Errorf("%w: %s line %d: user %.70q: at most 64 characters, no spaces", ErrUsersFile, path, n, user)
		case users[user] != nil:
			return nil, fmt.Errorf("%w: %s line %d: user %q is listed twice", ErrUsersFile, path, n, user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%w: %s line %d: user %q: not a bcrypt hash (htpasswd -nB %s): %w", ErrUsersFile, path, n, user, user, err)
		}
		users[user] = []byte(hash)
		if len(users) > MaxConsoleUsers {
			return nil, fmt.Errorf("%w: %s: more than %d users", ErrUsersFile, path, MaxConsoleUsers)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUsersFile, path, err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%w: %s lists no user", ErrUsersFile, path)
	}
	return users, nil
}
