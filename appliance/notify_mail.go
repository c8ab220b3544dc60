package appliance

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// priorityName is the word for an event priority in mail subjects and the MIB.
func priorityName(p Priority) string {
	switch p {
	case PriorityInfo:
		return "info"
	case PriorityNotice:
		return "notice"
	case PriorityWarning:
		return "warning"
	}
	return fmt.Sprintf("priority %d", int(p))
}

// formatMail renders e as an RFC 5322 message. It is pure: the host names the node in the
// subject and the Message-ID. Header values are single-line and Q-encoded when not ASCII,
// so an event text cannot inject a header.
func formatMail(c *MailNotifyConfig, host string, e Event) []byte {
	oneLine := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	subject := fmt.Sprintf("[redundantd %s] %s %s: %s", oneLine(host), strings.ToUpper(priorityName(e.Priority)), oneLine(e.Application), oneLine(e.Name))
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", c.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(c.To, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", e.Time.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <redundantd.%d.%d@%s>\r\n", e.Time.UnixNano(), e.Seq, syslogField(host, 200))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
	fmt.Fprintf(&b, "X-Redundantd-Event: %d\r\n\r\n", e.Seq)
	body := fmt.Sprintf("%s\n\nnode:        %s\ntime:        %s\npriority:    %d (%s)\napplication: %s\nevent:       %s\nsequence:    %d\n",
		e.Description, host, e.Time.UTC().Format(time.RFC3339), e.Priority, priorityName(e.Priority), e.Application, e.Name, e.Seq)
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n"))
	return b.Bytes()
}

// mailSender submits one message per event over SMTP (RFC 5321) with STARTTLS (RFC 3207) or
// implicit TLS, and AUTH PLAIN (RFC 4616) when a user is configured. A connection per event:
// events are rare, and a server that dropped an idle connection costs nothing.
type mailSender struct {
	cfg      *MailNotifyConfig
	host     string
	password string
	tls      *tls.Config
}

func newMailSender(c *MailNotifyConfig, host string, i int) (*mailSender, error) {
	s := &mailSender{cfg: c, host: host}
	server, _, _ := net.SplitHostPort(c.Address)
	s.tls = &tls.Config{ServerName: server, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := loadCAFile(fmt.Sprintf("notify[%d].ca_file", i), c.CAFile)
		if err != nil {
			return nil, err
		}
		s.tls.RootCAs = pool
	}
	if c.Username != "" {
		pw, err := readSecret(fmt.Sprintf("notify[%d].password_file", i), c.PasswordFile)
		if err != nil {
			return nil, err
		}
		s.password = pw
	}
	return s, nil
}

// loadCAFile reads PEM certificates to trust.
func loadCAFile(key, path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Key: key, Problem: fmt.Sprintf("cannot read the CA file: %v", err)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, &ConfigError{Key: key, Problem: fmt.Sprintf("%s holds no PEM certificate", path)}
	}
	return pool, nil
}

func (s *mailSender) send(ctx context.Context, m message) error {
	if err := s.submit(ctx, formatMail(s.cfg, s.host, m.Event)); err != nil {
		return fmt.Errorf("%w: mail via %s: %w", ErrNotify, s.cfg.Address, err)
	}
	return nil
}

func (s *mailSender) submit(ctx context.Context, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Address)
	if err != nil {
		return err
	}
	// The deadline bounds every read and write of the dialogue; a server that accepts and
	// never greets fails at it instead of holding the channel.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if s.cfg.TLS == MailTLS {
		conn = tls.Client(conn, s.tls)
	}
	server, _, _ := net.SplitHostPort(s.cfg.Address)
	c, err := smtp.NewClient(conn, server)
	if err != nil {
		_ = conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello(syslogField(s.host, 200)); err != nil {
		return err
	}
	if s.cfg.TLS == MailSTARTTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("the server does not offer STARTTLS (set tls = \"none\" only for a local relay)")
		}
		if err := c.StartTLS(s.tls); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if s.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.password, server)); err != nil {
			return fmt.Errorf("AUTH PLAIN as %q: %w", s.cfg.Username, err)
		}
	}
	if err := c.Mail(s.cfg.From); err != nil {
		return err
	}
	for _, to := range s.cfg.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func (s *mailSender) close() error { return nil }
