package appliance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/redundantd/redundantd/appliance/internal/promtext"
	"github.com/redundantd/redundantd/testlab/poll"
)

// TestMetrics scrapes both nodes of a two-node group and checks the values, the page's
// content type, that Prometheus's own parser reads it, and the names with promlint and,
// when Debian's prometheus package is installed, with `promtool check metrics`, as an
// operator's CI would.
func TestMetrics(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer hook.Close()
	_, n := twoNodes(t, func(i int, cfg *Config) {
		if i == 0 {
			cfg.Notify = []NotifyConfig{{Name: "ops", Type: NotifyWebhook, MinPriority: PriorityNotice,
				Timeout: time.Second, Queue: 16, Retries: 1, Backoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
				Webhook: &WebhookNotifyConfig{URL: hook.URL}}}
		}
	})
	body := scrape(t, n[0].api)
	text := string(body)
	for _, want := range []string{
		`redundantd_vrrp_state{group="18",state="master"} 1`,
		`redundantd_vrrp_state{group="18",state="backup"} 0`,
		`redundantd_vrrp_priority{group="18"} 200`,
		`redundantd_vrrp_transitions_total{cause="master down",from="backup",group="18",to="master"} 1`,
		`redundantd_vrrp_virtual_ips_held{group="18"} 1`,
		`redundantd_vrrp_advert_send_errors_total{group="18"} 0`,
		`redundantd_vrrp_priority_zero_sent_total{group="18"} 0`,
		`redundantd_peer_up 1`,
		`redundantd_info{node="pbx-a",version="` + Version + `"} 1`,
		`redundantd_notify_dropped_total{channel="ops",reason="queue_full",type="webhook"} 0`,
		`redundantd_notify_queued{channel="ops",type="webhook"} `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
	if v := sampleValue(t, body, "redundantd_vrrp_adverts_sent_total", `group="18"`); v < 1 {
		t.Errorf("the Master sent %v adverts, want at least 1", v)
	}
	// The Backup counts the Master's adverts as they arrive (every second).
	var backup []byte
	poll.Until(t, 10*time.Second, "the Backup counting an advert", func() bool {
		backup = scrape(t, n[1].api)
		return sampleValue(t, backup, "redundantd_vrrp_adverts_received_total", `group="18"`) >= 1
	})
	if !strings.Contains(string(backup), `redundantd_vrrp_state{group="18",state="backup"} 1`) {
		t.Errorf("the Backup's page:\n%s", backup)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %+v", err, problems)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian: apt-get install prometheus); promlint only")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// scrape GETs api's /metrics and checks the answer's status and content type.
func scrape(t *testing.T, api string) []byte {
	t.Helper()
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != promtext.ContentType {
		t.Errorf("Content-Type %q, want %q", ct, promtext.ContentType)
	}
	return body
}

// sampleValue parses the page with Prometheus's text parser and returns the value of the
// sample of family name whose labels, written name="value" in name order, are labels.
func sampleValue(t *testing.T, page []byte, name, labels string) float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the page: %v\n%s", err, page)
	}
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no %s:\n%s", name, page)
	}
	for _, m := range f.Metric {
		var ls []string
		for _, l := range m.Label {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		if strings.Join(ls, ",") != labels {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("no %s{%s}:\n%s", name, labels, page)
	return 0
}

// TestTransitionReachesTheWebhook: the appliance sends its events to the configured
// channels, a transition with its VRRP detail (the Master's address).
func TestTransitionReachesTheWebhook(t *testing.T) {
	got := make(chan WebhookPayload, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p WebhookPayload
		if err := json.NewDecoder(r.Body).Decode(&p); err == nil {
			got <- p
		}
	}))
	defer srv.Close()
	_, n := twoNodes(t, func(i int, cfg *Config) {
		if i == 1 {
			cfg.Notify = []NotifyConfig{{Name: "ops", Type: NotifyWebhook, MinPriority: PriorityNotice,
				Timeout: time.Second, Queue: 16, Retries: 1, Backoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
				Webhook: &WebhookNotifyConfig{URL: srv.URL}}}
		}
	})
	n[0].stop() // the Master stops: the Backup takes over and says so
	deadline := time.After(10 * time.Second)
	for {
		select {
		case p := <-got:
			b, _ := json.Marshal(p)
			if strings.Contains(string(b), "became master") {
				if !strings.Contains(string(b), "192.0.2.12") {
					t.Errorf("the transition's notification lacks the new Master's address: %s", b)
				}
				return
			}
		case <-deadline:
			t.Fatal("no notification of the takeover")
		}
	}
}
