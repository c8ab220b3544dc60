package appliance

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SDID is the structured-data element of redundantd's syslog messages (RFC 5424 section
// 6.3.2: name@private-enterprise-number; the number is the product MIB's placeholder PEN).
const SDID = "redundantd@" + PEN

// syslogSeverity maps an event priority to an RFC 5424 severity: warning 4, notice 5,
// informational 6.
func syslogSeverity(p Priority) int {
	switch {
	case p >= PriorityWarning:
		return 4
	case p == PriorityNotice:
		return 5
	}
	return 6
}

// formatSyslog renders e as one RFC 5424 message (section 6):
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [redundantd@PEN seq=.. priority=.. application=.. name=..] description
//
// MSGID is the application, PROCID the daemon's pid. It is pure: pid is passed in.
func formatSyslog(c *SyslogNotifyConfig, host string, pid int, e Event) []byte {
	if c.Hostname != "" {
		host = c.Hostname
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>1 %s %s %s %d %s [%s seq=\"%d\" priority=\"%d\" application=\"%s\" name=\"%s\"] ",
		c.Facility*8+syslogSeverity(e.Priority),
		e.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		syslogField(host, 255), c.AppName, pid, syslogField(e.Application, 32),
		SDID, e.Seq, e.Priority, sdEscape(e.Application), sdEscape(e.Name))
	b.WriteString(syslogText(e.Description))
	return []byte(b.String())
}

// syslogField makes s a valid header field (PRINTUSASCII, at most n), "-" when empty.
func syslogField(s string, n int) string {
	out := strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return '_'
		}
		return r
	}, s)
	if len(out) > n {
		out = out[:n]
	}
	if out == "" {
		return "-"
	}
	return out
}

// sdEscape escapes a PARAM-VALUE (RFC 5424 section 6.3.3).
func sdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(syslogText(s))
}

// syslogText makes s valid UTF-8 (invalid bytes become U+FFFD; PARAM-VALUE and MSG are
// UTF-8) on one line: CR and LF become spaces, so a receiver that splits on newlines sees
// one event as one message.
func syslogText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// syslogSender writes to one syslog receiver. UDP and the local socket send a datagram per
// message; TCP keeps one connection, frames with octet counting (RFC 6587 section 3.4.1)
// and reconnects after an error.
type syslogSender struct {
	cfg  *SyslogNotifyConfig
	host string
	pid  int

	mu   sync.Mutex
	conn net.Conn
}

func newSyslogSender(c *SyslogNotifyConfig, host string) *syslogSender {
	return &syslogSender{cfg: c, host: host, pid: os.Getpid()}
}

func (s *syslogSender) network() string {
	if s.cfg.Network == SyslogLocal {
		return "unixgram"
	}
	return s.cfg.Network
}

func (s *syslogSender) send(ctx context.Context, m message) error {
	msg := formatSyslog(s.cfg, s.host, s.pid, m.Event)
	if s.cfg.Network == SyslogTCP {
		msg = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, s.network(), s.cfg.Address)
		if err != nil {
			return fmt.Errorf("%w: syslog %s %s: %w", ErrNotify, s.cfg.Network, s.cfg.Address, err)
		}
		s.conn = conn
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(DefaultNotifySendTimeout)
	}
	_ = s.conn.SetWriteDeadline(dl)
	if _, err := s.conn.Write(msg); err != nil {
		_ = s.conn.Close()
		s.conn = nil
		return fmt.Errorf("%w: syslog %s %s: %w", ErrNotify, s.cfg.Network, s.cfg.Address, err)
	}
	return nil
}

func (s *syslogSender) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
