package appliance

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gosnmp/gosnmp"
)

var testEventTime = time.Date(2026, 12, 1, 20, 15, 30, 123456000, time.UTC)

func TestNotifyAccepts(t *testing.T) {
	all := NotifyConfig{MinPriority: PriorityInfo}
	some := NotifyConfig{MinPriority: PriorityNotice, Applications: []string{AppRedundancy, AppBerofos}}
	tests := []struct {
		cfg  NotifyConfig
		e    Event
		want bool
	}{
		{all, Event{Priority: PriorityInfo, Application: AppSync}, true},
		{all, Event{Priority: PriorityWarning, Application: AppService}, true},
		{some, Event{Priority: PriorityInfo, Application: AppRedundancy}, false},
		{some, Event{Priority: PriorityNotice, Application: AppRedundancy}, true},
		{some, Event{Priority: PriorityWarning, Application: AppBerofos}, true},
		{some, Event{Priority: PriorityWarning, Application: AppSync}, false},
	}
	for i, tt := range tests {
		if got := tt.cfg.accepts(tt.e); got != tt.want {
			t.Errorf("%d: accepts(%+v) = %v, want %v", i, tt.e, got, tt.want)
		}
	}
}

func TestNotifyRetryDelay(t *testing.T) {
	c := NotifyConfig{Retries: 6, Backoff: time.Second, MaxBackoff: 10 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for attempt, w := range want {
		d, ok := c.retryDelay(attempt)
		if !ok || d != w {
			t.Errorf("retryDelay(%d) = %v, %v; want %v, true", attempt, d, ok, w)
		}
	}
	if d, ok := c.retryDelay(6); ok {
		t.Errorf("retryDelay(6) = %v, true; want to give up after 6 retries", d)
	}
	none := NotifyConfig{Retries: 0, Backoff: time.Second, MaxBackoff: time.Second}
	if _, ok := none.retryDelay(0); ok {
		t.Error("retries = 0 retried")
	}
	// Doubling never overflows into a negative or unbounded delay.
	big := NotifyConfig{Retries: 100, Backoff: time.Hour, MaxBackoff: 24 * time.Hour}
	if d, ok := big.retryDelay(99); !ok || d != 24*time.Hour {
		t.Errorf("retryDelay(99) = %v, %v; want 24h, true", d, ok)
	}
}

func TestFormatSyslog(t *testing.T) {
	c := &SyslogNotifyConfig{Facility: 3, AppName: "redundantd"}
	e := Event{Seq: 42, Time: testEventTime, Priority: PriorityNotice, Application: AppRedundancy,
		Name: `became "master"]`, Description: "peer 192.0.2.2 silent\nfor 3.6s"}
	got := string(formatSyslog(c, "pbx1", 1234, e))
	want := `<29>1 2026-12-01T20:15:30.123456Z pbx1 redundantd 1234 REDUNDANCY [redundantd@99999 seq="42" priority="2" application="REDUNDANCY" name="became \"master\"\]"] peer 192.0.2.2 silent for 3.6s`
	if got != want {
		t.Errorf("formatSyslog:\n got %s\nwant %s", got, want)
	}
	c.Hostname = "override"
	e.Priority, e.Application, e.Description = PriorityWarning, "", ""
	got = string(formatSyslog(c, "pbx 1", 1, e))
	if !strings.HasPrefix(got, "<28>1 2026-12-01T20:15:30.123456Z override redundantd 1 - [") {
		t.Errorf("formatSyslog with an empty application: %s", got)
	}
}

func TestFormatMail(t *testing.T) {
	c := &MailNotifyConfig{From: "pbx@example.com", To: []string{"a@example.com", "b@example.com"}}
	e := Event{Seq: 7, Time: testEventTime, Priority: PriorityWarning, Application: AppBerofos,
		Name: "device unreachable\r\nBcc: evil@example.com", Description: "fos1 did not answer\n.\nend"}
	got := string(formatMail(c, "pbx1", e))
	head, body, ok := strings.Cut(got, "\r\n\r\n")
	if !ok {
		t.Fatalf("no header/body separator in:\n%s", got)
	}
	wantHead := "From: pbx@example.com\r\nTo: a@example.com, b@example.com\r\n" +
		"Subject: [redundantd pbx1] WARNING BEROFOS: device unreachable Bcc: evil@example.com\r\n" +
		"Date: Tue, 01 Dec 2026 20:15:30 +0000\r\nMessage-ID: <redundantd.1796156130123456000.7@pbx1>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nX-Redundantd-Event: 7"
	if diff := cmp.Diff(wantHead, head); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(body, "fos1 did not answer\r\n.\r\nend\r\n\r\nnode:        pbx1\r\n") || strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\n") {
		t.Errorf("body:\n%q", body)
	}
}

func TestSNMPTraps(t *testing.T) {
	e := Event{Seq: 1<<32 + 5, Time: testEventTime, Priority: PriorityNotice, Application: AppRedundancy,
		Name: "became master", Description: strings.Repeat("é", 200)}
	m := message{Event: e, VRRP: &VRRPDetail{IfIndex: 2, VRID: 51, MasterAddr: netip.MustParseAddr("192.0.2.1"), Reason: NewMasterMasterNoResponse}}
	got := snmpTraps(m, "pbx1")
	desc := strings.Repeat("é", 127) // 254 octets: the 128th would cross 255
	want := [][]gosnmp.SnmpPDU{
		{
			{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: "1.3.6.1.2.1.207.0.1"},
			{Name: "1.3.6.1.2.1.207.1.1.1.1.3.2.51.1", Type: gosnmp.OctetString, Value: []byte{192, 0, 2, 1}},
			{Name: "1.3.6.1.2.1.207.1.2.5.1.2.2.51.1", Type: gosnmp.Integer, Value: 3},
		},
		{
			{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: "1.3.6.1.4.1.99999.0.1"},
			{Name: "1.3.6.1.4.1.99999.1.1.0", Type: gosnmp.Gauge32, Value: uint(5)},
			{Name: "1.3.6.1.4.1.99999.1.2.0", Type: gosnmp.Integer, Value: 2},
			{Name: "1.3.6.1.4.1.99999.1.3.0", Type: gosnmp.OctetString, Value: "REDUNDANCY"},
			{Name: "1.3.6.1.4.1.99999.1.4.0", Type: gosnmp.OctetString, Value: "became master"},
			{Name: "1.3.6.1.4.1.99999.1.5.0", Type: gosnmp.OctetString, Value: desc},
			{Name: "1.3.6.1.4.1.99999.1.6.0", Type: gosnmp.OctetString, Value: []byte{0x07, 0xea, 12, 1, 20, 15, 30, 1, '+', 0, 0}},
			{Name: "1.3.6.1.4.1.99999.1.7.0", Type: gosnmp.OctetString, Value: "pbx1"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("traps (-want +got):\n%s", diff)
	}

	m.VRRP = &VRRPDetail{IfIndex: 3, VRID: 7, MasterAddr: netip.MustParseAddr("2001:db8::1"), ProtoError: ProtoErrChecksum}
	got = snmpTraps(m, "pbx1")
	wantProto := []gosnmp.SnmpPDU{
		{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: "1.3.6.1.2.1.207.0.2"},
		{Name: "1.3.6.1.2.1.207.1.2.5.1.6.3.7.2", Type: gosnmp.Integer, Value: 3},
	}
	if len(got) != 2 {
		t.Fatalf("got %d traps, want 2", len(got))
	}
	if diff := cmp.Diff(wantProto, got[0]); diff != "" {
		t.Errorf("proto error trap (-want +got):\n%s", diff)
	}
	if got := snmpTraps(message{Event: e}, "pbx1"); len(got) != 1 {
		t.Errorf("an event without VRRP details gave %d traps, want 1 (the product's)", len(got))
	}
}

func TestDefaultEngineID(t *testing.T) {
	want := []byte{0x80, 0x01, 0x86, 0x9f, 0x04, 'p', 'b', 'x', '1'}
	if diff := cmp.Diff(want, DefaultEngineID("pbx1")); diff != "" {
		t.Errorf("DefaultEngineID (-want +got):\n%s", diff)
	}
	if got := DefaultEngineID(strings.Repeat("h", 40)); len(got) != 32 {
		t.Errorf("a long host name gave %d bytes, want 32 (the SnmpEngineID maximum)", len(got))
	}
}

// TestNewMasterReasonOf classifies the Reason texts vrrp/machine.go gives a transition to
// Master.
func TestNewMasterReasonOf(t *testing.T) {
	tests := []struct {
		reason string
		want   int
	}{
		{"start as the address owner (priority 255)", NewMasterPriority},
		{"no advert within Master_Down_Interval of start", NewMasterMasterNoResponse},
		{"master 192.0.2.2 resigned (priority 0 advert)", NewMasterMasterNoResponse},
		{"no advert from master 192.0.2.2 within Master_Down_Interval", NewMasterMasterNoResponse},
		{"preempting master 192.0.2.2 with lower priority 90", NewMasterPreempted},
	}
	for _, tt := range tests {
		if got := NewMasterReasonOf(tt.reason); got != tt.want {
			t.Errorf("NewMasterReasonOf(%q) = %d, want %d", tt.reason, got, tt.want)
		}
	}
}
