package appliance

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Webhook headers.
const (
	// WebhookSignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body under the
	// channel's secret, when one is configured (the receiver recomputes it over the raw body
	// and compares in constant time).
	WebhookSignatureHeader = "X-Redundantd-Signature"
	WebhookEventHeader     = "X-Redundantd-Event" // the event's sequence number
)

// WebhookPayload is the JSON body of a webhook POST: the Event's fields, the node's host
// name and, for VRRP events passed with NotifyVRRP, the VRRP details.
type WebhookPayload struct {
	Event
	Host string      `json:"host"`
	VRRP *VRRPDetail `json:"vrrp,omitempty"`
}

// SignWebhook returns the value of WebhookSignatureHeader for body under secret.
func SignWebhook(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// webhookSender POSTs each event; any 2xx answer is success.
type webhookSender struct {
	cfg    *WebhookNotifyConfig
	host   string
	secret []byte
	client *http.Client
}

func newWebhookSender(c *WebhookNotifyConfig, host string, i int) (*webhookSender, error) {
	s := &webhookSender{cfg: c, host: host}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // an appliance notifies its own receivers; no environment proxy in between
	tr.Protocols = http1Only()
	if c.CAFile != "" {
		pool, err := loadCAFile(fmt.Sprintf("notify[%d].ca_file", i), c.CAFile)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	s.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect would resend the event elsewhere unsigned by intent
	}}
	if c.SecretFile != "" {
		sec, err := readSecret(fmt.Sprintf("notify[%d].secret_file", i), c.SecretFile)
		if err != nil {
			return nil, err
		}
		s.secret = []byte(sec)
	}
	return s, nil
}

func (s *webhookSender) send(ctx context.Context, m message) error {
	body, err := json.Marshal(WebhookPayload{Event: m.Event, Host: s.host, VRRP: m.VRRP})
	if err != nil {
		return fmt.Errorf("%w: webhook: %w", ErrNotify, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: webhook: %w", ErrNotify, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "redundantd")
	req.Header.Set(WebhookEventHeader, strconv.FormatUint(m.Event.Seq, 10))
	if s.secret != nil {
		req.Header.Set(WebhookSignatureHeader, SignWebhook(s.secret, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: webhook: %w", ErrNotify, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: webhook %s: answered %s", ErrNotify, s.cfg.URL, resp.Status)
	}
	return nil
}

func (s *webhookSender) close() error {
	s.client.CloseIdleConnections()
	return nil
}
