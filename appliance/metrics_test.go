package appliance

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetrics scrapes a Master of a two-node group and checks the names with promlint and,
// when Debian's prometheus package is installed, with `promtool check metrics`, as an
// operator's CI would.
func TestMetrics(t *testing.T) {
	_, n := twoNodes(t, nil)
	resp, err := http.Get(n[0].api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	text := string(body)
	for _, want := range []string{
		`redundantd_vrrp_state{group="18",state="master"} 1`,
		`redundantd_vrrp_state{group="18",state="backup"} 0`,
		`redundantd_vrrp_priority{group="18"} 200`,
		`redundantd_vrrp_transitions_total{cause="master down",from="backup",group="18",to="master"} 1`,
		`redundantd_vrrp_virtual_ips_held{group="18"} 1`,
		`redundantd_peer_up 1`,
		`redundantd_info{node="pbx-a",version="` + Version + `"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
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
