package appliance

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pelletier/go-toml/v2"
)

// decodeNotify decodes a document of [[notify]] tables the way ParseConfig decodes a file
// (strictly) and validates them.
func decodeNotify(t *testing.T, doc string) ([]NotifyConfig, problems) {
	t.Helper()
	var raw struct {
		Notify []rawNotify `toml:"notify"`
	}
	dec := toml.NewDecoder(bytes.NewReader([]byte(doc))).DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("decode: %v", err)
	}
	var p problems
	return validateNotifications(raw.Notify, &p), p
}

func TestNotifyConfigValid(t *testing.T) {
	got, p := decodeNotify(t, `
[[notify]]
type = "syslog"
address = "192.0.2.10"

[[notify]]
name = "journal"
type = "syslog"
network = "local"
facility = "local3"
min_priority = 2
applications = ["REDUNDANCY", "BEROFOS"]

[[notify]]
name = "ops-mail"
type = "mail"
address = "smtp.example.com"
username = "pbx"
password_file = "/etc/redundantd/smtp.pass"
from = "PBX <pbx@example.com>"
to = ["ops@example.com", "oncall@example.com"]
min_priority = 3
timeout = "10s"
retries = 8
backoff = "2s"
max_backoff = "5m"
queue = 16

[[notify]]
name = "nms"
type = "snmp"
version = "3"
address = "[2001:db8::1]:1162"
user = "redundantd"
auth_protocol = "sha-256"
auth_password_file = "/etc/redundantd/snmp.auth"
priv_password_file = "/etc/redundantd/snmp.priv"
engine_id = "0x8001869f0470627831"

[[notify]]
name = "nms2c"
type = "snmp"
address = "192.0.2.20"
community = "public"

[[notify]]
type = "webhook"
url = "https://hooks.example.com/pbx"
secret_file = "/etc/redundantd/hook.secret"
`)
	if len(p) > 0 {
		t.Fatalf("unexpected problems: %v", errors.Join(p...))
	}
	common := func(name, typ string) NotifyConfig {
		return NotifyConfig{Name: name, Type: typ, MinPriority: PriorityInfo, Timeout: DefaultNotifySendTimeout,
			Queue: DefaultNotifyQueue, Retries: DefaultNotifyRetries, Backoff: DefaultNotifyBackoff, MaxBackoff: DefaultNotifyMaxBackoff}
	}
	want := []NotifyConfig{common("syslog", NotifySyslog), common("journal", NotifySyslog), common("ops-mail", NotifyMail),
		common("nms", NotifySNMP), common("nms2c", NotifySNMP), common("webhook", NotifyWebhook)}
	want[0].Syslog = &SyslogNotifyConfig{Network: SyslogUDP, Address: "192.0.2.10:514", Facility: 3, AppName: "redundantd"}
	want[1].MinPriority, want[1].Applications = PriorityNotice, []string{AppRedundancy, AppBerofos}
	want[1].Syslog = &SyslogNotifyConfig{Network: SyslogLocal, Address: "/dev/log", Facility: 19, AppName: "redundantd"}
	want[2].MinPriority, want[2].Timeout, want[2].Retries, want[2].Backoff, want[2].MaxBackoff, want[2].Queue =
		PriorityWarning, 10*time.Second, 8, 2*time.Second, 5*time.Minute, 16
	want[2].Mail = &MailNotifyConfig{Address: "smtp.example.com:587", TLS: MailSTARTTLS, Username: "pbx",
		PasswordFile: "/etc/redundantd/smtp.pass", From: "pbx@example.com", To: []string{"ops@example.com", "oncall@example.com"}}
	want[3].SNMP = &SNMPNotifyConfig{Version: SNMPv3, Address: "[2001:db8::1]:1162", User: "redundantd", AuthProtocol: "SHA-256",
		AuthPasswordFile: "/etc/redundantd/snmp.auth", PrivProtocol: "AES", PrivPasswordFile: "/etc/redundantd/snmp.priv",
		EngineID: []byte{0x80, 0x01, 0x86, 0x9f, 0x04, 'p', 'b', 'x', '1'}}
	want[4].SNMP = &SNMPNotifyConfig{Version: SNMPv2c, Address: "192.0.2.20:162", Community: "public"}
	want[5].Webhook = &WebhookNotifyConfig{URL: "https://hooks.example.com/pbx", SecretFile: "/etc/redundantd/hook.secret"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("configs (-want +got):\n%s", diff)
	}
}

// TestNotifyConfigErrors checks that each bad value is reported with its key.
func TestNotifyConfigErrors(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string // "key: fragment of the problem"
	}{
		{"no type", `[[notify]]
address = "192.0.2.1"`, []string{"notify[0].type: is required"}},
		{"bad type", `[[notify]]
type = "pager"`, []string{`notify[0].type: "pager"`}},
		{"duplicate names", `[[notify]]
type = "webhook"
url = "http://192.0.2.1/"
[[notify]]
type = "webhook"
url = "http://192.0.2.2/"`, []string{`notify[1].name: "webhook" is already the name of notify[0]`}},
		{"filters", `[[notify]]
type = "webhook"
url = "http://192.0.2.1/"
min_priority = 4
applications = ["REDUNDANCY", "PBX", "REDUNDANCY"]`, []string{"notify[0].min_priority: 4", `notify[0].applications[1]: "PBX"`, `notify[0].applications[2]: "REDUNDANCY" is listed twice`}},
		{"empty applications", `[[notify]]
type = "webhook"
url = "http://192.0.2.1/"
applications = []`, []string{"notify[0].applications: is empty"}},
		{"bounds", `[[notify]]
type = "webhook"
url = "http://192.0.2.1/"
timeout = "2h"
queue = 0
retries = -1
backoff = "10s"
max_backoff = "1s"`, []string{"notify[0].timeout: 2h0m0s is out of range", "notify[0].queue: 0 is out of range", "notify[0].retries: -1", "notify[0].max_backoff: 1s is shorter than backoff"}},
		{"key of another type", `[[notify]]
type = "syslog"
address = "192.0.2.1:514"
url = "http://192.0.2.1/"
community = "x"`, []string{`notify[0].url: has no effect for type "syslog"`, `notify[0].community: has no effect for type "syslog"`}},
		{"syslog", `[[notify]]
type = "syslog"
network = "tls"
facility = "local9"
app_name = "red undantd"
[[notify]]
name = "b"
type = "syslog"
network = "local"
address = "dev/log"
[[notify]]
name = "c"
type = "syslog"
network = "tcp"`, []string{`notify[0].network: "tls"`, "notify[0].address: is required", `notify[0].facility: "local9"`, `notify[0].app_name: "red undantd"`,
			`notify[1].address: "dev/log"`, "notify[2].address: is required"}},
		{"mail", `[[notify]]
type = "mail"
address = "smtp.example.com:99999"
tls = "none"
username = "u"
from = "not an address"
to = ["ok@example.com", "@bad"]
password_file = "relative/pass"`, []string{`notify[0].address: "smtp.example.com:99999"`, "notify[0].username: AUTH without TLS",
			`notify[0].from: "not an address"`, `notify[0].to[1]: "@bad"`, `notify[0].password_file: "relative/pass"`}},
		{"mail missing", `[[notify]]
type = "mail"
address = "smtp.example.com"
username = "u"`, []string{"notify[0].password_file: is required with username", "notify[0].from: is required", "notify[0].to: is required"}},
		{"snmp v2c", `[[notify]]
type = "snmp"
address = "192.0.2.1"
user = "u"`, []string{`notify[0].user: is for version "3"`, "notify[0].community: is required"}},
		{"snmp v3", `[[notify]]
type = "snmp"
version = "3"
address = "192.0.2.1"
community = "public"
auth_protocol = "MD5"
priv_protocol = "DES"
engine_id = "0x80"`, []string{`notify[0].community: is for version "2c"`, "notify[0].user: is required", `notify[0].auth_protocol: "MD5"`,
			`notify[0].priv_protocol: "DES"`, "notify[0].auth_password_file: is required", "notify[0].priv_password_file: is required",
			`notify[0].engine_id: "0x80"`}},
		{"snmp version", `[[notify]]
type = "snmp"
version = "1"
address = "192.0.2.1"
community = "public"`, []string{`notify[0].version: "1"`}},
		{"webhook", `[[notify]]
type = "webhook"
url = "ftp://example.com/"
secret_file = "secret"`, []string{`notify[0].url: "ftp://example.com/"`, `notify[0].secret_file: "secret"`}},
		{"webhook no url", `[[notify]]
type = "webhook"`, []string{"notify[0].url: is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, p := decodeNotify(t, tt.doc)
			var got []string
			for _, e := range p {
				got = append(got, e.Error())
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || strings.HasPrefix(g, w[:strings.Index(w, ":")+1]) && strings.Contains(g, w[strings.Index(w, ":")+2:])
				}
				if !found {
					t.Errorf("missing problem %q in:\n%s", w, strings.Join(got, "\n"))
				}
			}
			for _, e := range p {
				if !errors.Is(e, ErrConfig) {
					t.Errorf("%v does not wrap ErrConfig", e)
				}
			}
		})
	}
}

func TestNotifyConfigTooMany(t *testing.T) {
	doc := strings.Repeat("[[notify]]\ntype = \"webhook\"\nurl = \"http://192.0.2.1/\"\n", MaxNotifyChannels+1)
	_, p := decodeNotify(t, doc)
	if len(p) != 1 || !strings.Contains(p[0].Error(), "notify: 33 entries; at most 32") {
		t.Errorf("problems = %v, want one about the count", p)
	}
}

// TestNotifyDocsExample validates the example of docs/notifications.md, so the document and
// the validator cannot drift apart.
func TestNotifyDocsExample(t *testing.T) {
	b, err := os.ReadFile("../docs/notifications.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "\n## Example\n")
	if !ok {
		t.Fatal("docs/notifications.md has no Example section")
	}
	after, _, _ = strings.Cut(after, "\n## ")
	var doc strings.Builder
	for _, l := range strings.Split(after, "\n") {
		if s, ok := strings.CutPrefix(l, "    "); ok {
			doc.WriteString(s + "\n")
		}
	}
	got, p := decodeNotify(t, doc.String())
	if len(p) > 0 {
		t.Fatalf("the documented example is invalid: %v", errors.Join(p...))
	}
	var names []string
	for _, c := range got {
		names = append(names, c.Name+"/"+c.Type)
	}
	if diff := cmp.Diff([]string{"syslog/syslog", "ops-mail/mail", "nms/snmp", "chat/webhook"}, names); diff != "" {
		t.Errorf("channels (-want +got):\n%s", diff)
	}
}
