package appliance

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Notification channel types, the value of a [[notify]] table's type key.
const (
	NotifySyslog  = "syslog"
	NotifyMail    = "mail"
	NotifySNMP    = "snmp"
	NotifyWebhook = "webhook"
)

// Defaults of a [[notify]] entry.
const (
	DefaultNotifySendTimeout = 5 * time.Second
	DefaultNotifyQueue       = 64
	DefaultNotifyRetries     = 5
	DefaultNotifyBackoff     = time.Second
	DefaultNotifyMaxBackoff  = time.Minute
	DefaultSyslogLocal       = "/dev/log"
	DefaultSyslogAppName     = "redundantd"
	DefaultSyslogFacility    = 3 // daemon
	MaxNotifyChannels        = 32
)

// Syslog transports (RFC 5424 section 6 messages; RFC 5426 over UDP, RFC 6587 octet
// counting over TCP, and the local datagram socket).
const (
	SyslogUDP   = "udp"
	SyslogTCP   = "tcp"
	SyslogLocal = "local"
)

// Mail transport security.
const (
	MailSTARTTLS = "starttls" // plain connection upgraded with STARTTLS (RFC 3207); required
	MailTLS      = "tls"      // implicit TLS (RFC 8314), usually port 465
	MailNone     = "none"     // no TLS: only for a relay on the same host; AUTH is refused
)

// NotifyConfig is one validated notification channel: which events it takes and where they
// go. Exactly one of Syslog, Mail, SNMP and Webhook is set, the one named by Type.
type NotifyConfig struct {
	Name         string
	Type         string   // NotifySyslog, NotifyMail, NotifySNMP or NotifyWebhook
	MinPriority  Priority // events below it are not sent
	Applications []string // AppRedundancy, ...; empty means every application

	Timeout    time.Duration // bound of one send attempt: a hung receiver costs at most this
	Queue      int           // events waiting for this channel; more are dropped and counted
	Retries    int           // attempts after the first failed one
	Backoff    time.Duration // delay before the first retry, doubled for each further one
	MaxBackoff time.Duration // bound of that delay

	Syslog  *SyslogNotifyConfig
	Mail    *MailNotifyConfig
	SNMP    *SNMPNotifyConfig
	Webhook *WebhookNotifyConfig
}

// SyslogNotifyConfig sends RFC 5424 messages.
type SyslogNotifyConfig struct {
	Network  string // SyslogUDP, SyslogTCP or SyslogLocal
	Address  string // host:port, or the socket path for SyslogLocal (default /dev/log)
	Facility int    // 0..23, RFC 5424 section 6.2.1
	AppName  string
	Hostname string // empty: the machine's host name
}

// MailNotifyConfig sends one mail per event through an SMTP submission server.
type MailNotifyConfig struct {
	Address      string // host:port of the server
	TLS          string // MailSTARTTLS, MailTLS or MailNone
	CAFile       string // PEM roots to trust instead of the system's (a private CA)
	Username     string // AUTH PLAIN user; empty means no AUTH
	PasswordFile string // the password, first line of the file; read by NewNotifier
	From         string
	To           []string
}

// SNMP versions of a channel.
const (
	SNMPv2c = "2c"
	SNMPv3  = "3"
)

// SNMPNotifyConfig sends SNMPv2c or SNMPv3 (USM authPriv) traps.
type SNMPNotifyConfig struct {
	Version   string // SNMPv2c or SNMPv3
	Address   string // host:port of the manager, port usually 162
	Community string // v2c

	// v3, USM authPriv (RFC 3414, RFC 3826).
	User             string
	AuthProtocol     string // "SHA", "SHA-256" or "SHA-512"
	AuthPasswordFile string
	PrivProtocol     string // "AES" (AES-128) or "AES-256"
	PrivPasswordFile string
	// EngineID is this sender's authoritative engine ID; the manager's user entry names it
	// (snmptrapd: createUser -e 0x...). Default: DefaultEngineID(host name).
	EngineID []byte
}

// WebhookNotifyConfig POSTs each event as JSON.
type WebhookNotifyConfig struct {
	URL        string
	CAFile     string // PEM roots for an https URL with a private CA
	SecretFile string // when set, the body is signed with HMAC-SHA256 under its first line
}

// rawNotify mirrors one [[notify]] table. The table is flat: the keys of every type are
// listed here, and a key that the entry's type does not use is reported.
type rawNotify struct {
	Name         *string  `toml:"name"`
	Type         *string  `toml:"type"`
	MinPriority  *int64   `toml:"min_priority"`
	Applications []string `toml:"applications"`
	Timeout      *string  `toml:"timeout"`
	Queue        *int64   `toml:"queue"`
	Retries      *int64   `toml:"retries"`
	Backoff      *string  `toml:"backoff"`
	MaxBackoff   *string  `toml:"max_backoff"`

	Address *string `toml:"address"`
	CAFile  *string `toml:"ca_file"`

	Network  *string `toml:"network"`
	Facility *string `toml:"facility"`
	AppName  *string `toml:"app_name"`
	Hostname *string `toml:"hostname"`

	TLS          *string  `toml:"tls"`
	Username     *string  `toml:"username"`
	PasswordFile *string  `toml:"password_file"`
	From         *string  `toml:"from"`
	To           []string `toml:"to"`

	Version          *string `toml:"version"`
	Community        *string `toml:"community"`
	User             *string `toml:"user"`
	AuthProtocol     *string `toml:"auth_protocol"`
	AuthPasswordFile *string `toml:"auth_password_file"`
	PrivProtocol     *string `toml:"priv_protocol"`
	PrivPasswordFile *string `toml:"priv_password_file"`
	EngineID         *string `toml:"engine_id"`

	URL        *string `toml:"url"`
	SecretFile *string `toml:"secret_file"`
}

// notifyKeyTypes lists, for each type-specific key, the types that use it.
var notifyKeyTypes = []struct {
	key   string
	set   func(r *rawNotify) bool
	types []string
}{
	{"address", func(r *rawNotify) bool { return r.Address != nil }, []string{NotifySyslog, NotifyMail, NotifySNMP}},
	{"ca_file", func(r *rawNotify) bool { return r.CAFile != nil }, []string{NotifyMail, NotifyWebhook}},
	{"network", func(r *rawNotify) bool { return r.Network != nil }, []string{NotifySyslog}},
	{"facility", func(r *rawNotify) bool { return r.Facility != nil }, []string{NotifySyslog}},
	{"app_name", func(r *rawNotify) bool { return r.AppName != nil }, []string{NotifySyslog}},
	{"hostname", func(r *rawNotify) bool { return r.Hostname != nil }, []string{NotifySyslog}},
	{"tls", func(r *rawNotify) bool { return r.TLS != nil }, []string{NotifyMail}},
	{"username", func(r *rawNotify) bool { return r.Username != nil }, []string{NotifyMail}},
	{"password_file", func(r *rawNotify) bool { return r.PasswordFile != nil }, []string{NotifyMail}},
	{"from", func(r *rawNotify) bool { return r.From != nil }, []string{NotifyMail}},
	{"to", func(r *rawNotify) bool { return r.To != nil }, []string{NotifyMail}},
	{"version", func(r *rawNotify) bool { return r.Version != nil }, []string{NotifySNMP}},
	{"community", func(r *rawNotify) bool { return r.Community != nil }, []string{NotifySNMP}},
	{"user", func(r *rawNotify) bool { return r.User != nil }, []string{NotifySNMP}},
	{"auth_protocol", func(r *rawNotify) bool { return r.AuthProtocol != nil }, []string{NotifySNMP}},
	{"auth_password_file", func(r *rawNotify) bool { return r.AuthPasswordFile != nil }, []string{NotifySNMP}},
	{"priv_protocol", func(r *rawNotify) bool { return r.PrivProtocol != nil }, []string{NotifySNMP}},
	{"priv_password_file", func(r *rawNotify) bool { return r.PrivPasswordFile != nil }, []string{NotifySNMP}},
	{"engine_id", func(r *rawNotify) bool { return r.EngineID != nil }, []string{NotifySNMP}},
	{"url", func(r *rawNotify) bool { return r.URL != nil }, []string{NotifyWebhook}},
	{"secret_file", func(r *rawNotify) bool { return r.SecretFile != nil }, []string{NotifyWebhook}},
}

var notifyApplications = []string{AppRedundancy, AppBerofos, AppSync, AppService, AppConsole}

// syslogFacilities are the RFC 5424 section 6.2.1 facility keywords.
var syslogFacilities = []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "ntp", "audit", "alert", "clock",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}

// validateNotifications checks the [[notify]] entries and applies their defaults. Keys are
// reported as notify[i].key. Secret files are checked for form (an absolute path) only; they
// are read by NewNotifier, so that a configuration can be validated on any machine.
func validateNotifications(raw []rawNotify, p *problems) []NotifyConfig {
	if !p.listLen("notify", len(raw), MaxNotifyChannels, "one table per receiver") {
		return nil
	}
	out := make([]NotifyConfig, 0, len(raw))
	seen := map[string]int{}
	for i := range raw {
		r := &raw[i]
		key := func(k string) string { return fmt.Sprintf("notify[%d].%s", i, k) }
		c := validateNotifyCommon(r, key, p)
		if c.Name != "" {
			if j, dup := seen[c.Name]; dup {
				p.add(key("name"), "%q is already the name of notify[%d]; give each channel its own name", c.Name, j)
			}
			seen[c.Name] = i
		}
		for _, k := range notifyKeyTypes {
			if k.set(r) && c.Type != "" && !slices.Contains(k.types, c.Type) {
				p.add(key(k.key), "has no effect for type %q (used by %s)", c.Type, strings.Join(k.types, ", "))
			}
		}
		switch c.Type {
		case NotifySyslog:
			c.Syslog = validateNotifySyslog(r, key, p)
		case NotifyMail:
			c.Mail = validateNotifyMail(r, key, p)
		case NotifySNMP:
			c.SNMP = validateNotifySNMP(r, key, p)
		case NotifyWebhook:
			c.Webhook = validateNotifyWebhook(r, key, p)
		}
		out = append(out, c)
	}
	return out
}

// validateNotifyCommon checks the keys every type has.
func validateNotifyCommon(r *rawNotify, key func(string) string, p *problems) NotifyConfig {
	c := NotifyConfig{MinPriority: PriorityInfo}
	types := []string{NotifySyslog, NotifyMail, NotifySNMP, NotifyWebhook}
	switch {
	case r.Type == nil:
		p.add(key("type"), "is required: one of %s", strings.Join(types, ", "))
	case !slices.Contains(types, *r.Type):
		p.add(key("type"), "%q: use one of %s", *r.Type, strings.Join(types, ", "))
	default:
		c.Type = *r.Type
	}
	switch {
	case r.Name == nil:
		c.Name = c.Type // the type names a channel that is the only one of its type
	case !validServiceName(*r.Name):
		p.add(key("name"), "%q: use letters, digits and . _ - @ (at most 64)", *r.Name)
	default:
		c.Name = *r.Name
	}
	if r.MinPriority != nil {
		if *r.MinPriority < int64(PriorityInfo) || *r.MinPriority > int64(PriorityWarning) {
			p.add(key("min_priority"), "%d: use 1 (info, every event), 2 (notice) or 3 (warning)", *r.MinPriority)
		} else {
			c.MinPriority = Priority(*r.MinPriority)
		}
	}
	for j, a := range r.Applications {
		switch {
		case !slices.Contains(notifyApplications, a):
			p.add(fmt.Sprintf("%s[%d]", key("applications"), j), "%q: use %s", a, strings.Join(notifyApplications, ", "))
		case slices.Contains(c.Applications, a):
			p.add(fmt.Sprintf("%s[%d]", key("applications"), j), "%q is listed twice", a)
		default:
			c.Applications = append(c.Applications, a)
		}
	}
	if r.Applications != nil && len(r.Applications) == 0 {
		p.add(key("applications"), "is empty, so the channel would send nothing; leave it out for every application")
	}
	c.Timeout = p.duration(key("timeout"), r.Timeout, DefaultNotifySendTimeout, 10*time.Millisecond, time.Minute)
	c.Queue = intKey(p, key("queue"), r.Queue, DefaultNotifyQueue, 1, 10000)
	c.Retries = intKey(p, key("retries"), r.Retries, DefaultNotifyRetries, 0, 100)
	c.Backoff = p.duration(key("backoff"), r.Backoff, DefaultNotifyBackoff, time.Millisecond, time.Hour)
	c.MaxBackoff = p.duration(key("max_backoff"), r.MaxBackoff, max(DefaultNotifyMaxBackoff, c.Backoff), time.Millisecond, 24*time.Hour)
	if c.MaxBackoff < c.Backoff {
		p.add(key("max_backoff"), "%s is shorter than backoff (%s)", c.MaxBackoff, c.Backoff)
	}
	return c
}

// intKey reads an optional integer in lo..hi.
func intKey(p *problems, key string, v *int64, def, lo, hi int) int {
	if v == nil {
		return def
	}
	if *v < int64(lo) || *v > int64(hi) {
		p.add(key, "%d is out of range %d..%d", *v, lo, hi)
		return def
	}
	return int(*v)
}

// hostPortKey checks a host:port address; defPort is added when the port is left out.
func hostPortKey(p *problems, key string, v *string, defPort string) string {
	if v == nil || *v == "" {
		p.add(key, "is required: host:port of the receiver")
		return ""
	}
	s := *v
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.Trim(s, "[]"), defPort
		s = net.JoinHostPort(host, port)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		p.add(key, "%q: give host:port, for example %q", *v, net.JoinHostPort("192.0.2.10", defPort))
		return ""
	}
	return s
}

// secretFileKey checks an optional path to a file holding a secret.
func secretFileKey(p *problems, key string, v *string) string {
	if v == nil {
		return ""
	}
	if !filepath.IsAbs(*v) {
		p.add(key, "%q: give an absolute path to a file readable only by redundantd", *v)
		return ""
	}
	return *v
}

func validateNotifySyslog(r *rawNotify, key func(string) string, p *problems) *SyslogNotifyConfig {
	c := &SyslogNotifyConfig{Network: SyslogUDP, Facility: DefaultSyslogFacility, AppName: DefaultSyslogAppName}
	if r.Network != nil {
		switch *r.Network {
		case SyslogUDP, SyslogTCP, SyslogLocal:
			c.Network = *r.Network
		default:
			p.add(key("network"), "%q: use udp, tcp or local (the /dev/log socket)", *r.Network)
		}
	}
	if c.Network == SyslogLocal {
		c.Address = DefaultSyslogLocal
		if r.Address != nil {
			if !filepath.IsAbs(*r.Address) {
				p.add(key("address"), "%q: the local socket is an absolute path, default %s", *r.Address, DefaultSyslogLocal)
			} else {
				c.Address = *r.Address
			}
		}
	} else {
		c.Address = hostPortKey(p, key("address"), r.Address, "514")
	}
	if r.Facility != nil {
		if f := slices.Index(syslogFacilities, *r.Facility); f < 0 {
			p.add(key("facility"), "%q: use one of %s", *r.Facility, strings.Join(syslogFacilities, ", "))
		} else {
			c.Facility = f
		}
	}
	if r.AppName != nil {
		if !printUSASCII(*r.AppName, 48) {
			p.add(key("app_name"), "%q: 1 to 48 printable ASCII characters without spaces (RFC 5424 APP-NAME)", *r.AppName)
		} else {
			c.AppName = *r.AppName
		}
	}
	if r.Hostname != nil {
		if !printUSASCII(*r.Hostname, 255) {
			p.add(key("hostname"), "%q: 1 to 255 printable ASCII characters without spaces (RFC 5424 HOSTNAME)", *r.Hostname)
		} else {
			c.Hostname = *r.Hostname
		}
	}
	return c
}

// printUSASCII reports whether s is 1..n characters of PRINTUSASCII (RFC 5424 section 6).
func printUSASCII(s string, n int) bool {
	if s == "" || len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

func validateNotifyMail(r *rawNotify, key func(string) string, p *problems) *MailNotifyConfig {
	c := &MailNotifyConfig{TLS: MailSTARTTLS}
	if r.TLS != nil {
		switch *r.TLS {
		case MailSTARTTLS, MailTLS, MailNone:
			c.TLS = *r.TLS
		default:
			p.add(key("tls"), "%q: use starttls, tls (implicit, port 465) or none", *r.TLS)
		}
	}
	defPort := "587"
	if c.TLS == MailTLS {
		defPort = "465"
	}
	c.Address = hostPortKey(p, key("address"), r.Address, defPort)
	c.CAFile = secretFileKey(p, key("ca_file"), r.CAFile)
	if r.Username != nil {
		c.Username = *r.Username
		if c.Username == "" || strings.ContainsAny(c.Username, "\x00\r\n") {
			p.add(key("username"), "must be non-empty, without NUL or line breaks")
		}
		if r.PasswordFile == nil {
			p.add(key("password_file"), "is required with username: the file holding the password")
		}
		if c.TLS == MailNone {
			p.add(key("username"), "AUTH without TLS would send the password in clear; use tls = \"starttls\" or \"tls\"")
		}
	} else if r.PasswordFile != nil {
		p.add(key("password_file"), "has no effect without username")
	}
	c.PasswordFile = secretFileKey(p, key("password_file"), r.PasswordFile)
	if r.From == nil {
		p.add(key("from"), "is required: the sender address, e.g. \"redundantd@pbx.example.com\"")
	} else if a, err := mail.ParseAddress(*r.From); err != nil {
		p.add(key("from"), "%q is not a mail address: %v", *r.From, err)
	} else {
		c.From = a.Address
	}
	if len(r.To) == 0 {
		p.add(key("to"), "is required: the list of recipients")
	}
	for j, t := range r.To {
		if a, err := mail.ParseAddress(t); err != nil {
			p.add(fmt.Sprintf("%s[%d]", key("to"), j), "%q is not a mail address: %v", t, err)
		} else {
			c.To = append(c.To, a.Address)
		}
	}
	return c
}

// snmpAuthProtocols and snmpPrivProtocols are the USM protocols accepted: the SHA family
// and AES; MD5 and DES are broken and refused.
var (
	snmpAuthProtocols = []string{"SHA", "SHA-256", "SHA-512"}
	snmpPrivProtocols = []string{"AES", "AES-256"}
)

func validateNotifySNMP(r *rawNotify, key func(string) string, p *problems) *SNMPNotifyConfig {
	c := &SNMPNotifyConfig{Version: SNMPv2c}
	if r.Version != nil {
		switch *r.Version {
		case SNMPv2c, SNMPv3:
			c.Version = *r.Version
		default:
			p.add(key("version"), "%q: use \"2c\" or \"3\"", *r.Version)
		}
	}
	c.Address = hostPortKey(p, key("address"), r.Address, "162")
	if c.Version == SNMPv2c {
		for _, k := range []struct {
			name string
			set  bool
		}{{"user", r.User != nil}, {"auth_protocol", r.AuthProtocol != nil}, {"auth_password_file", r.AuthPasswordFile != nil},
			{"priv_protocol", r.PrivProtocol != nil}, {"priv_password_file", r.PrivPasswordFile != nil}, {"engine_id", r.EngineID != nil}} {
			if k.set {
				p.add(key(k.name), "is for version \"3\"")
			}
		}
		if r.Community == nil || *r.Community == "" {
			p.add(key("community"), "is required for version \"2c\"")
		} else {
			c.Community = *r.Community
		}
		return c
	}
	if r.Community != nil {
		p.add(key("community"), "is for version \"2c\"; version \"3\" uses user and its passwords")
	}
	if r.User == nil || *r.User == "" || len(*r.User) > 32 {
		p.add(key("user"), "is required for version \"3\": the USM user name (1 to 32 characters)")
	} else {
		c.User = *r.User
	}
	c.AuthProtocol = choiceKey(p, key("auth_protocol"), r.AuthProtocol, "SHA", snmpAuthProtocols)
	c.PrivProtocol = choiceKey(p, key("priv_protocol"), r.PrivProtocol, "AES", snmpPrivProtocols)
	if r.AuthPasswordFile == nil {
		p.add(key("auth_password_file"), "is required for version \"3\" (authPriv)")
	}
	if r.PrivPasswordFile == nil {
		p.add(key("priv_password_file"), "is required for version \"3\" (authPriv)")
	}
	c.AuthPasswordFile = secretFileKey(p, key("auth_password_file"), r.AuthPasswordFile)
	c.PrivPasswordFile = secretFileKey(p, key("priv_password_file"), r.PrivPasswordFile)
	if r.EngineID != nil {
		id, err := hex.DecodeString(strings.TrimPrefix(strings.TrimPrefix(*r.EngineID, "0x"), "0X"))
		if err != nil || len(id) < 5 || len(id) > 32 {
			p.add(key("engine_id"), "%q: 5 to 32 bytes in hex, e.g. \"0x8001869f04706278\" (RFC 3411 SnmpEngineID)", *r.EngineID)
		} else {
			c.EngineID = id
		}
	}
	return c
}

// choiceKey reads an optional key that must be one of choices (compared case-insensitively,
// returned as spelled in choices).
func choiceKey(p *problems, key string, v *string, def string, choices []string) string {
	if v == nil {
		return def
	}
	for _, c := range choices {
		if strings.EqualFold(c, *v) {
			return c
		}
	}
	p.add(key, "%q: use one of %s", *v, strings.Join(choices, ", "))
	return def
}

func validateNotifyWebhook(r *rawNotify, key func(string) string, p *problems) *WebhookNotifyConfig {
	c := &WebhookNotifyConfig{}
	if r.URL == nil {
		p.add(key("url"), "is required: the http:// or https:// address events are POSTed to")
	} else if u, err := url.Parse(*r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(key("url"), "%q: give an absolute http:// or https:// URL", *r.URL)
	} else {
		c.URL = *r.URL
	}
	c.CAFile = secretFileKey(p, key("ca_file"), r.CAFile)
	c.SecretFile = secretFileKey(p, key("secret_file"), r.SecretFile)
	return c
}
