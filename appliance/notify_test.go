package appliance

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/redundantd/redundantd/testlab/tlscert"
)

// hangGuard bounds a wait that should end on an event; reaching it is a failure (a hang),
// not a timing assertion.
const hangGuard = 60 * time.Second

// testChannel is a channel config with fast retries for tests.
func testChannel(name, typ string) NotifyConfig {
	return NotifyConfig{Name: name, Type: typ, MinPriority: PriorityInfo, Timeout: 5 * time.Second,
		Queue: 16, Retries: 2, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
}

// startNotifier builds and runs a notifier until the test ends.
func startNotifier(t *testing.T, cfgs ...NotifyConfig) *Notifier {
	t.Helper()
	n, err := NewNotifier(cfgs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("NewNotifier: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return n
}

// waitStatus waits until the named channel's status satisfies ok and returns it.
func waitStatus(t *testing.T, n *Notifier, name string, ok func(ChannelStatus) bool) ChannelStatus {
	t.Helper()
	guard := time.After(hangGuard)
	for {
		changed := n.Changed()
		for _, st := range n.Status() {
			if st.Name == name && ok(st) {
				return st
			}
		}
		select {
		case <-changed:
		case <-guard:
			t.Fatalf("channel %s never reached the expected status: %+v", name, n.Status())
		}
	}
}

func testEvent(seq uint64, name, desc string) Event {
	return Event{Seq: seq, Time: testEventTime, Priority: PriorityNotice, Application: AppRedundancy, Name: name, Description: desc, Status: StatusNew}
}

// rfc5424 parses the messages formatSyslog writes: header, one SD element, message.
var rfc5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\d+) (\S+) \[redundantd@99999 seq="(\d+)" priority="(\d)" application="((?:[^"\\]|\\.)*)" name="((?:[^"\\]|\\.)*)"\] (.*)$`)

func checkSyslogLine(t *testing.T, line string, e Event, pri int) {
	t.Helper()
	m := rfc5424.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("not an RFC 5424 message of ours: %q", line)
	}
	ts, err := time.Parse(time.RFC3339Nano, m[2])
	if err != nil || !ts.Equal(e.Time) {
		t.Errorf("TIMESTAMP %q (%v), want %v", m[2], err, e.Time)
	}
	got := []string{m[1], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11]}
	want := []string{strconv.Itoa(pri), "redundantd", strconv.Itoa(os.Getpid()), e.Application, strconv.FormatUint(e.Seq, 10),
		strconv.Itoa(int(e.Priority)), e.Application, e.Name, e.Description}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("syslog fields (-want +got):\n%s", diff)
	}
}

func TestNotifySyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	c := testChannel("syslog", NotifySyslog)
	c.Syslog = &SyslogNotifyConfig{Network: SyslogUDP, Address: pc.LocalAddr().String(), Facility: 3, AppName: "redundantd", Hostname: "pbx1"}
	n := startNotifier(t, c)
	e := testEvent(1, "became master", "peer 192.0.2.2 silent for 3.6s")
	n.Notify(e)
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(hangGuard))
	k, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkSyslogLine(t, string(buf[:k]), e, 3*8+5)
	st := waitStatus(t, n, "syslog", func(s ChannelStatus) bool { return s.Sent == 1 })
	if st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("status %+v", st)
	}
}

func TestNotifySyslogTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c := testChannel("syslog-tcp", NotifySyslog)
	c.Syslog = &SyslogNotifyConfig{Network: SyslogTCP, Address: l.Addr().String(), Facility: 16, AppName: "redundantd"}
	n := startNotifier(t, c)
	events := []Event{testEvent(1, "became master", "first"), testEvent(2, "peer down", "second, with a\nnewline")}
	events[1].Priority = PriorityWarning
	for _, e := range events {
		n.Notify(e)
	}
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(hangGuard))
	r := bufio.NewReader(conn)
	// RFC 6587 section 3.4.1 octet counting: MSG-LEN SP SYSLOG-MSG, no trailer.
	for i, e := range events {
		lenField, err := r.ReadString(' ')
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		size, err := strconv.Atoi(strings.TrimSuffix(lenField, " "))
		if err != nil {
			t.Fatalf("frame %d: length %q: %v", i, lenField, err)
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(r, msg); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		e.Description = strings.ReplaceAll(e.Description, "\n", " ")
		checkSyslogLine(t, string(msg), e, 16*8+syslogSeverity(e.Priority))
	}
	waitStatus(t, n, "syslog-tcp", func(s ChannelStatus) bool { return s.Sent == 2 })
}

func TestNotifySyslogLocal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	pc, err := net.ListenPacket("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	c := testChannel("journal", NotifySyslog)
	c.Syslog = &SyslogNotifyConfig{Network: SyslogLocal, Address: path, Facility: 3, AppName: "redundantd"}
	n := startNotifier(t, c)
	e := testEvent(9, "swap", "operator swap")
	n.Notify(e)
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(hangGuard))
	k, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkSyslogLine(t, string(buf[:k]), e, 3*8+5)
}

// TestNotifySyslogDown: a receiver that is not there is retried, then the event is
// dropped and counted, with the error in the status.
func TestNotifySyslogDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nobody")
	c := testChannel("journal", NotifySyslog)
	c.Syslog = &SyslogNotifyConfig{Network: SyslogLocal, Address: path, Facility: 3, AppName: "redundantd"}
	n := startNotifier(t, c)
	n.Notify(testEvent(1, "became master", ""))
	st := waitStatus(t, n, "journal", func(s ChannelStatus) bool { return s.Dropped == 1 })
	if st.Failed != 3 || st.DroppedRetries != 1 || st.Sent != 0 || !strings.Contains(st.LastError, path) {
		t.Errorf("status %+v: want 3 failed attempts (1 + 2 retries), one drop after retries, the error naming the socket", st)
	}
}

func writeSecret(t *testing.T, name, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNotifyWebhook(t *testing.T) {
	secret := "s3cr3t-hook"
	type got struct {
		payload  WebhookPayload
		raw      map[string]any
		sigOK    bool
		eventHdr string
	}
	gotc := make(chan got, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var g got
		_ = json.Unmarshal(body, &g.payload)
		_ = json.Unmarshal(body, &g.raw)
		// The receiver's side of the signature: recompute over the raw body, constant time.
		g.sigOK = r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/json" &&
			hmac.Equal([]byte(r.Header.Get(WebhookSignatureHeader)), []byte(SignWebhook([]byte(secret), body)))
		g.eventHdr = r.Header.Get(WebhookEventHeader)
		gotc <- g
	}))
	t.Cleanup(srv.Close)
	c := testChannel("hook", NotifyWebhook)
	c.Webhook = &WebhookNotifyConfig{URL: srv.URL + "/events", SecretFile: writeSecret(t, "hook", secret)}
	n := startNotifier(t, c)

	e := testEvent(3, "became master", "priority 200 > 100")
	v := VRRPDetail{IfIndex: 2, VRID: 51, MasterAddr: netip.MustParseAddr("192.0.2.1"), Reason: NewMasterPriority}
	n.NotifyVRRP(e, v)
	g := <-gotc
	if !g.sigOK {
		t.Error("HMAC-SHA256 signature, method or content type wrong")
	}
	if g.eventHdr != "3" {
		t.Errorf("%s = %q, want 3", WebhookEventHeader, g.eventHdr)
	}
	host, _ := os.Hostname()
	want := WebhookPayload{Event: e, Host: host, VRRP: &v}
	if diff := cmp.Diff(want, g.payload, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	// The wire names are the API's snake_case ones.
	for _, k := range []string{"seq", "time", "priority", "application", "name", "description", "status", "host", "vrrp"} {
		if _, ok := g.raw[k]; !ok {
			t.Errorf("payload has no %q: %v", k, g.raw)
		}
	}
	if vr, _ := g.raw["vrrp"].(map[string]any); vr["master_addr"] != "192.0.2.1" || vr["reason"] != 1.0 {
		t.Errorf("vrrp = %v", g.raw["vrrp"])
	}
	waitStatus(t, n, "hook", func(s ChannelStatus) bool { return s.Sent == 1 })
}

// TestNotifyWebhookHTTP1OverTLS: the webhook speaks HTTP/1.1 to an HTTPS receiver that
// would take HTTP/2 (http1Only), and checks the receiver's certificate against ca_file.
func TestNotifyWebhookHTTP1OverTLS(t *testing.T) {
	protos := make(chan string, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	c := testChannel("hook", NotifyWebhook)
	c.Webhook = &WebhookNotifyConfig{URL: srv.URL + "/events", CAFile: ca}
	n := startNotifier(t, c)
	n.Notify(testEvent(3, "became master", "priority 200 > 100"))
	if p := <-protos; p != "HTTP/1.1" {
		t.Errorf("the webhook spoke %s, want HTTP/1.1", p)
	}
	waitStatus(t, n, "hook", func(s ChannelStatus) bool { return s.Sent == 1 })
}

// TestNotifyWebhookRefused: a receiver answering 500 is retried, then dropped and counted.
func TestNotifyWebhookRefused(t *testing.T) {
	hits := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- struct{}{}
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	c := testChannel("hook", NotifyWebhook)
	c.Webhook = &WebhookNotifyConfig{URL: srv.URL}
	n := startNotifier(t, c)
	n.Notify(testEvent(1, "peer down", ""))
	st := waitStatus(t, n, "hook", func(s ChannelStatus) bool { return s.Dropped == 1 })
	if len(hits) != 3 || st.Failed != 3 || st.DroppedRetries != 1 || !strings.Contains(st.LastError, "500") {
		t.Errorf("status %+v after %d requests: want 3 attempts, one drop after retries, the 500 in last_error", st, len(hits))
	}
}

// TestNotifyHungReceiver: a webhook that accepts and never answers delays neither Notify nor
// another channel; its events are retried (each attempt bounded by the timeout), then
// dropped and counted, and events beyond its queue are dropped at once.
func TestNotifyHungReceiver(t *testing.T) {
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		entered <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })

	hung := testChannel("hung", NotifyWebhook)
	hung.Webhook = &WebhookNotifyConfig{URL: srv.URL}
	hung.Timeout, hung.Queue, hung.Retries = 50*time.Millisecond, 1, 1
	fast := testChannel("syslog", NotifySyslog)
	fast.Syslog = &SyslogNotifyConfig{Network: SyslogUDP, Address: pc.LocalAddr().String(), Facility: 3, AppName: "redundantd"}
	n, err := NewNotifier([]NotifyConfig{hung, fast}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Before Run: event 1 fills the hung channel's queue of 1, events 2 and 3 are dropped
	// for it at once (and queued for syslog).
	for i := uint64(1); i <= 3; i++ {
		n.Notify(testEvent(i, "became master", "event"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-entered // event 1 in flight to the hung receiver; Notify still returns at once
	n.Notify(testEvent(4, "swap", "four"))

	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(hangGuard))
	for i := 1; i <= 4; i++ {
		k, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(buf[:k]), fmt.Sprintf(`seq="%d"`, i)) {
			t.Errorf("syslog message %d: %s", i, buf[:k])
		}
	}
	st := waitStatus(t, n, "hung", func(s ChannelStatus) bool { return s.Dropped == 4 })
	want := ChannelStatus{Name: "hung", Type: NotifyWebhook, Failed: 4, Dropped: 4, DroppedQueueFull: 2, DroppedRetries: 2}
	if diff := cmp.Diff(want, st, cmpStatus); diff != "" {
		t.Errorf("hung channel status (-want +got):\n%s", diff)
	}
	if !strings.Contains(st.LastError, "deadline exceeded") {
		t.Errorf("last_error %q, want the attempt timeout", st.LastError)
	}
	if st := waitStatus(t, n, "syslog", func(s ChannelStatus) bool { return s.Sent == 4 }); st.Dropped != 0 {
		t.Errorf("the syslog channel dropped %d", st.Dropped)
	}
}

// cmpStatus compares statuses without their times and error text.
var cmpStatus = cmp.Comparer(func(a, b ChannelStatus) bool {
	a.LastError, b.LastError = "", ""
	a.LastErrorTime, b.LastErrorTime, a.LastSentTime, b.LastSentTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
})

func TestNotifyStatusJSON(t *testing.T) {
	st := ChannelStatus{Name: "hook", Type: "webhook", Sent: 1, Failed: 2, Dropped: 3, DroppedQueueFull: 1, DroppedRetries: 2, Queued: 4,
		LastError: "x", LastErrorTime: testEventTime}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"hook","type":"webhook","sent":1,"failed":2,"dropped":3,"dropped_queue_full":1,"dropped_retries":2,"queued":4,"last_error":"x","last_error_time":"2026-12-01T20:15:30.123456Z"}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}

// TestNewNotifierSecrets: an unreadable or empty secret file is reported by NewNotifier,
// naming its key.
func TestNewNotifierSecrets(t *testing.T) {
	empty := writeSecret(t, "empty", "")
	hook := testChannel("hook", NotifyWebhook)
	hook.Webhook = &WebhookNotifyConfig{URL: "http://127.0.0.1/", SecretFile: "/nonexistent/secret"}
	m := testChannel("mail", NotifyMail)
	m.Mail = &MailNotifyConfig{Address: "127.0.0.1:25", TLS: MailSTARTTLS, Username: "u", PasswordFile: empty, From: "a@example.com", To: []string{"b@example.com"}}
	s := testChannel("snmp", NotifySNMP)
	s.SNMP = &SNMPNotifyConfig{Version: SNMPv3, Address: "127.0.0.1:162", User: "u", AuthProtocol: "SHA", PrivProtocol: "AES",
		AuthPasswordFile: writeSecret(t, "auth", "short"), PrivPasswordFile: writeSecret(t, "priv", "longenough")}
	_, err := NewNotifier([]NotifyConfig{hook, m, s}, nil)
	for _, k := range []string{"notify[0].secret_file: cannot read", "notify[1].password_file: " + empty + ": the first line is empty", "notify[2].auth_password_file: USM passwords"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("error %v does not report %q", err, k)
		}
	}
	if !errors.Is(err, ErrConfig) {
		t.Errorf("%v does not wrap ErrConfig", err)
	}
}

// selfSigned makes a certificate for 127.0.0.1 and writes it as a CA file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	certFile, keyFile, _ := tlscert.Files(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certFile
}

// smtpBackend is a real SMTP server's backend (go-smtp): AUTH PLAIN against one user,
// messages handed to the test.
type smtpBackend struct {
	user, pass string
	got        chan smtpMail
}

type smtpMail struct {
	user, from string
	to         []string
	data       string
	tls        bool
}

type smtpSession struct {
	be   *smtpBackend
	conn *smtp.Conn
	m    smtpMail
}

func (b *smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{be: b, conn: c}, nil
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != s.be.user || pass != s.be.pass {
			return errors.New("invalid credentials")
		}
		s.m.user = user
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.m.user == "" {
		return smtp.ErrAuthRequired
	}
	s.m.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.to = append(s.m.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.data = string(b)
	_, s.m.tls = s.conn.TLSConnectionState()
	s.be.got <- s.m
	return nil
}

func (s *smtpSession) Reset()        {}
func (s *smtpSession) Logout() error { return nil }

func startSMTP(t *testing.T) (*smtpBackend, string, string) {
	t.Helper()
	cert, ca := selfSigned(t)
	be := &smtpBackend{user: "pbx", pass: "mail-pass", got: make(chan smtpMail, 4)}
	srv := smtp.NewServer(be)
	srv.Domain = "127.0.0.1"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.AllowInsecureAuth = false // AUTH only after STARTTLS
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return be, l.Addr().String(), ca
}

func TestNotifyMail(t *testing.T) {
	be, addr, ca := startSMTP(t)
	c := testChannel("mail", NotifyMail)
	c.Mail = &MailNotifyConfig{Address: addr, TLS: MailSTARTTLS, CAFile: ca, Username: "pbx", PasswordFile: writeSecret(t, "pass", "mail-pass"),
		From: "pbx@example.com", To: []string{"ops@example.com", "oncall@example.com"}}
	n := startNotifier(t, c)
	e := testEvent(5, "became master", "peer 192.0.2.2 silent for 3.6s")
	n.Notify(e)
	m := <-be.got
	if !m.tls || m.user != "pbx" || m.from != "pbx@example.com" || !cmp.Equal(m.to, []string{"ops@example.com", "oncall@example.com"}) {
		t.Errorf("envelope: tls %v user %q from %q to %v", m.tls, m.user, m.from, m.to)
	}
	host, _ := os.Hostname()
	for _, w := range []string{"Subject: [redundantd " + host + "] NOTICE REDUNDANCY: became master\r\n", "X-Redundantd-Event: 5\r\n",
		"\r\n\r\npeer 192.0.2.2 silent for 3.6s\r\n"} {
		if !strings.Contains(m.data, w) {
			t.Errorf("message lacks %q:\n%s", w, m.data)
		}
	}
	waitStatus(t, n, "mail", func(s ChannelStatus) bool { return s.Sent == 1 })
}

// TestNotifyMailWrongPassword: refused credentials are an error in the status, retried and
// dropped with a count, never a crash.
func TestNotifyMailWrongPassword(t *testing.T) {
	_, addr, ca := startSMTP(t)
	c := testChannel("mail", NotifyMail)
	c.Retries = 0
	c.Mail = &MailNotifyConfig{Address: addr, TLS: MailSTARTTLS, CAFile: ca, Username: "pbx", PasswordFile: writeSecret(t, "pass", "wrong"),
		From: "pbx@example.com", To: []string{"ops@example.com"}}
	n := startNotifier(t, c)
	n.Notify(testEvent(1, "peer down", ""))
	st := waitStatus(t, n, "mail", func(s ChannelStatus) bool { return s.Dropped == 1 })
	if !strings.Contains(st.LastError, "AUTH PLAIN") || st.Sent != 0 {
		t.Errorf("status %+v", st)
	}
}

// TestNotifyMailUntrusted: a server whose certificate is not trusted gets nothing (no
// password sent over an unverified TLS).
func TestNotifyMailUntrusted(t *testing.T) {
	_, addr, _ := startSMTP(t)
	c := testChannel("mail", NotifyMail)
	c.Retries = 0
	c.Mail = &MailNotifyConfig{Address: addr, TLS: MailSTARTTLS, Username: "pbx", PasswordFile: writeSecret(t, "pass", "mail-pass"),
		From: "pbx@example.com", To: []string{"ops@example.com"}}
	n := startNotifier(t, c)
	n.Notify(testEvent(1, "peer down", ""))
	st := waitStatus(t, n, "mail", func(s ChannelStatus) bool { return s.Dropped == 1 })
	if !strings.Contains(st.LastError, "STARTTLS") || !strings.Contains(st.LastError, "certificate") {
		t.Errorf("last_error %q, want a certificate error at STARTTLS", st.LastError)
	}
}

// TestNotifyMailHung: an SMTP server that accepts and never greets costs each attempt its
// timeout, then the event is dropped and counted.
func TestNotifyMailHung(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- conn // held open, never written to
		}
	}()
	t.Cleanup(func() {
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	})
	c := testChannel("mail", NotifyMail)
	c.Timeout, c.Retries = 50*time.Millisecond, 1
	c.Mail = &MailNotifyConfig{Address: l.Addr().String(), TLS: MailSTARTTLS, From: "pbx@example.com", To: []string{"ops@example.com"}}
	n := startNotifier(t, c)
	n.Notify(testEvent(1, "became master", ""))
	st := waitStatus(t, n, "mail", func(s ChannelStatus) bool { return s.Dropped == 1 })
	timedOut := strings.Contains(st.LastError, "timeout") || strings.Contains(st.LastError, "deadline exceeded")
	if st.Failed != 2 || st.DroppedRetries != 1 || !timedOut {
		t.Errorf("status %+v: want 2 timed-out attempts and a drop after retries", st)
	}
}

// TestNotifyShutdown: events still queued or in flight when the notifier stops are counted
// as dropped, and Run returns although the receiver hangs.
func TestNotifyShutdown(t *testing.T) {
	entered := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // the server notices the client leaving only once the body is read
		entered <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	c := testChannel("hung", NotifyWebhook)
	c.Webhook = &WebhookNotifyConfig{URL: srv.URL}
	c.Timeout = time.Minute // only the shutdown ends the attempt
	n, err := NewNotifier([]NotifyConfig{c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	for i := uint64(1); i <= 3; i++ {
		n.Notify(testEvent(i, "became master", ""))
	}
	<-entered
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := n.Status()[0]
	if st.Dropped != 3 || st.Sent != 0 || st.DroppedRetries != 0 || st.Queued != 0 {
		t.Errorf("status after shutdown %+v: want the 3 events dropped, none after retries", st)
	}
}

// FuzzFormatSyslog: whatever the event's text, the message is one line that parses as
// RFC 5424 with our structured data, and the fields come back unescaped.
func FuzzFormatSyslog(f *testing.F) {
	f.Add("became master", "peer silent", "REDUNDANCY")
	f.Add(`a"b]c\d`, "line\nbreak\r", "")
	f.Add("", "", "BERO FOS")
	f.Fuzz(func(t *testing.T, name, desc, app string) {
		c := &SyslogNotifyConfig{Facility: 23, AppName: "redundantd"}
		e := Event{Seq: 1, Time: testEventTime, Priority: PriorityWarning, Application: app, Name: name, Description: desc}
		line := string(formatSyslog(c, "pbx1", 1, e))
		if strings.ContainsAny(line, "\r\n") {
			t.Fatalf("message spans lines: %q", line)
		}
		m := rfc5424.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("does not parse: %q", line)
		}
		unescape := strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\]`, `]`)
		// Invalid UTF-8 becomes U+FFFD, line breaks spaces.
		if got, want := unescape.Replace(m[10]), syslogText(name); got != want {
			t.Errorf("name %q came back as %q", want, got)
		}
		if got, want := unescape.Replace(m[9]), syslogText(app); got != want {
			t.Errorf("application %q came back as %q", want, got)
		}
	})
}

// BenchmarkNotifyHung measures Notify while the only channel's receiver hangs: the cost of
// handing an event over (and, once the queue is full, of dropping it), which is all a
// transition pays.
func BenchmarkNotifyHung(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		<-r.Context().Done()
	}))
	b.Cleanup(srv.Close)
	c := testChannel("hung", NotifyWebhook)
	c.Webhook = &WebhookNotifyConfig{URL: srv.URL}
	c.Timeout = time.Minute
	n, err := NewNotifier([]NotifyConfig{c}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	e := testEvent(1, "became master", "bench")
	for b.Loop() {
		n.Notify(e)
	}
	b.ReportMetric(float64(n.Status()[0].DroppedQueueFull), "dropped")
}
