package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrNotify is wrapped by every error a notification channel reports.
var ErrNotify = errors.New("notification")

// VRRP reasons for becoming Master, the values of RFC 6527's vrrpv3StatisticsNewMasterReason.
const (
	NewMasterPriority         = 1 // this node has the higher priority (or owns the address)
	NewMasterPreempted        = 2 // it preempted a lower-priority Master
	NewMasterMasterNoResponse = 3 // the Master's adverts stopped (Master_Down_Timer fired)
)

// VRRP protocol errors, the values of RFC 6527's vrrpv3StatisticsProtoErrReason.
const (
	ProtoErrIPTTL    = 1
	ProtoErrVersion  = 2
	ProtoErrChecksum = 3
	ProtoErrVRID     = 4
)

// VRRPDetail carries what the VRRPv3-MIB notifications (RFC 6527 section 7) need beyond an
// Event. Passed with NotifyVRRP, it makes SNMP channels send vrrpv3NewMaster (ProtoError 0)
// or vrrpv3ProtoError (ProtoError set) in addition to the product's event trap; the webhook
// carries it as "vrrp". Other channels use the Event only.
type VRRPDetail struct {
	IfIndex    int        `json:"if_index"`              // the VRRP interface's ifIndex, first index of the vrrpv3 tables
	VRID       uint8      `json:"vrid"`                  // second index
	MasterAddr netip.Addr `json:"master_addr,omitzero"`  // vrrpv3OperationsMasterIpAddr: the new Master's real address
	Reason     int        `json:"reason,omitempty"`      // NewMaster...: vrrpv3StatisticsNewMasterReason
	ProtoError int        `json:"proto_error,omitempty"` // ProtoErr...: a vrrpv3ProtoError instead of a vrrpv3NewMaster
}

// NewMasterReasonOf classifies the Reason text of a vrrp transition to Master (the texts of
// vrrp/machine.go) as a vrrpv3StatisticsNewMasterReason: the address owner starting is
// NewMasterPriority, a text that mentions preemption NewMasterPreempted, everything else (the
// Master_Down_Timer fired: the Master went silent, resigned with priority 0, or none was
// heard at start) NewMasterMasterNoResponse.
func NewMasterReasonOf(reason string) int {
	r := strings.ToLower(reason)
	switch {
	case strings.Contains(r, "address owner"), strings.Contains(r, "priority 255"):
		return NewMasterPriority
	case strings.Contains(r, "preempt"):
		return NewMasterPreempted
	}
	return NewMasterMasterNoResponse
}

// message is one event on its way to a channel.
type message struct {
	Event Event
	VRRP  *VRRPDetail
}

// sender delivers one message to one receiver. It must return when ctx ends.
type sender interface {
	send(ctx context.Context, m message) error
	close() error
}

// ChannelStatus is what a channel has done since the notifier started; the API and the
// metrics show it.
type ChannelStatus struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Sent counts events delivered, Failed failed attempts (each retry counts), Dropped the
	// events given up: DroppedQueueFull because the queue was full when the event came,
	// DroppedRetries after the last retry failed, the rest when the notifier stopped.
	Sent             uint64    `json:"sent"`
	Failed           uint64    `json:"failed"`
	Dropped          uint64    `json:"dropped"`
	DroppedQueueFull uint64    `json:"dropped_queue_full"`
	DroppedRetries   uint64    `json:"dropped_retries"`
	Queued           int       `json:"queued"`
	LastError        string    `json:"last_error,omitempty"`
	LastErrorTime    time.Time `json:"last_error_time,omitzero"`
	LastSentTime     time.Time `json:"last_sent_time,omitzero"`
}

// accepts reports whether the channel takes e: at or above its priority, and of one of its
// applications (all when none are listed).
func (c *NotifyConfig) accepts(e Event) bool {
	if e.Priority < c.MinPriority {
		return false
	}
	return len(c.Applications) == 0 || slices.Contains(c.Applications, e.Application)
}

// retryDelay is the pure retry policy: after failed attempt number attempt (0 for the
// first), wait the returned delay and try again, or give up when ok is false. The delay is
// Backoff doubled per retry, bounded by MaxBackoff.
func (c *NotifyConfig) retryDelay(attempt int) (delay time.Duration, ok bool) {
	if attempt >= c.Retries {
		return 0, false
	}
	d := c.Backoff
	for range attempt {
		d *= 2
		if d >= c.MaxBackoff || d <= 0 {
			return c.MaxBackoff, true
		}
	}
	return min(d, c.MaxBackoff), true
}

// channel is one configured receiver with its queue and counters.
type channel struct {
	cfg    NotifyConfig
	sender sender
	queue  chan message
	log    *slog.Logger

	mu sync.Mutex
	st ChannelStatus
}

// Notifier sends each event to the channels whose filters take it. Notify never blocks: each
// channel has a bounded queue drained by its own goroutine, every attempt is bounded by the
// channel's timeout, so a receiver that is down or hangs delays nothing but its own queue,
// and events it cannot take are dropped and counted.
type Notifier struct {
	channels []*channel
	log      *slog.Logger

	mu      sync.Mutex
	changed chan struct{}
}

// NewNotifier builds the channels of cfgs (from Config validation). It reads the secret
// files (mail and SNMPv3 passwords, webhook secrets) and CA files, so an unreadable one is
// reported now as a *ConfigError naming its key; it opens no connection. A nil logger
// discards.
func NewNotifier(cfgs []NotifyConfig, logger *slog.Logger) (*Notifier, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "redundantd"
	}
	n := &Notifier{log: logger, changed: make(chan struct{})}
	var errs []error
	for i, c := range cfgs {
		s, err := newSender(c, host, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.channels = append(n.channels, &channel{
			cfg: c, sender: s, queue: make(chan message, max(c.Queue, 1)),
			log: logger.With("channel", c.Name, "type", c.Type),
			st:  ChannelStatus{Name: c.Name, Type: c.Type},
		})
	}
	if len(errs) > 0 {
		for _, ch := range n.channels {
			_ = ch.sender.close()
		}
		return nil, errors.Join(errs...)
	}
	return n, nil
}

func newSender(c NotifyConfig, host string, i int) (sender, error) {
	switch {
	case c.Syslog != nil:
		return newSyslogSender(c.Syslog, host), nil
	case c.Mail != nil:
		return newMailSender(c.Mail, host, i)
	case c.SNMP != nil:
		return newSNMPSender(c.SNMP, host, i)
	case c.Webhook != nil:
		return newWebhookSender(c.Webhook, host, i)
	}
	return nil, &ConfigError{Key: fmt.Sprintf("notify[%d].type", i), Problem: fmt.Sprintf("channel %q has no %q settings", c.Name, c.Type)}
}

// readSecret returns the first line of a secret file; key names the setting for the error.
func readSecret(key, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &ConfigError{Key: key, Problem: fmt.Sprintf("cannot read the secret: %v", err)}
	}
	s, _, _ := strings.Cut(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return "", &ConfigError{Key: key, Problem: fmt.Sprintf("%s: the first line is empty", path)}
	}
	return s, nil
}

// Notify hands e to every channel that takes it and returns at once: a full queue drops the
// event for that channel and counts it.
func (n *Notifier) Notify(e Event) { n.enqueue(message{Event: e}) }

// NotifyVRRP is Notify with the VRRP details an SNMP channel turns into a VRRPv3-MIB
// notification (see VRRPDetail). Call it instead of Notify for the "became master" event
// and for VRRP protocol errors.
func (n *Notifier) NotifyVRRP(e Event, v VRRPDetail) { n.enqueue(message{Event: e, VRRP: &v}) }

func (n *Notifier) enqueue(m message) {
	if n == nil {
		return
	}
	for _, c := range n.channels {
		if !c.cfg.accepts(m.Event) {
			continue
		}
		select {
		case c.queue <- m:
		default:
			var full uint64
			c.update(func(st *ChannelStatus) { st.Dropped++; st.DroppedQueueFull++; full = st.DroppedQueueFull })
			if full&(full-1) == 0 { // 1, 2, 4, 8...: a flood of drops does not flood the log
				c.log.Warn("notification dropped: queue full", "seq", m.Event.Seq, "name", m.Event.Name, "queue", cap(c.queue), "dropped_queue_full", full)
			}
			n.signal()
		}
	}
}

// Status returns the counters of every channel, in configuration order.
func (n *Notifier) Status() []ChannelStatus {
	if n == nil {
		return nil
	}
	out := make([]ChannelStatus, 0, len(n.channels))
	for _, c := range n.channels {
		c.mu.Lock()
		st := c.st
		c.mu.Unlock()
		st.Queued = len(c.queue)
		out = append(out, st)
	}
	return out
}

// Changed returns a channel closed at the next change of Status (an event sent, failed or
// dropped): a follower (server-sent events, tests) waits on it, then calls Changed again.
func (n *Notifier) Changed() <-chan struct{} {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

func (n *Notifier) signal() {
	n.mu.Lock()
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

func (c *channel) update(f func(*ChannelStatus)) {
	c.mu.Lock()
	f(&c.st)
	c.mu.Unlock()
}

// Run drains the queues until ctx ends, then closes the channels' connections. Events still
// queued then are counted as dropped. A Notifier is run once; on a reload the daemon builds
// a new one from the new configuration (the counters start again) and stops the old one.
func (n *Notifier) Run(ctx context.Context) error {
	if len(n.channels) == 0 {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	for _, c := range n.channels {
		wg.Go(func() { n.drain(ctx, c) })
	}
	wg.Wait()
	for _, c := range n.channels {
		if err := c.sender.close(); err != nil {
			c.log.Debug("closing the notification channel", "err", err)
		}
	}
	return nil
}

func (n *Notifier) drain(ctx context.Context, c *channel) {
	for {
		select {
		case <-ctx.Done():
			n.dropQueued(c)
			return
		case m := <-c.queue:
			if ctx.Err() != nil { // both were ready: stopping wins
				c.update(func(st *ChannelStatus) { st.Dropped++ })
				n.dropQueued(c)
				return
			}
			n.deliver(ctx, c, m)
		}
	}
}

// dropQueued empties the queue at shutdown and counts what it held. Events notified after
// Run has returned stay queued (Status shows them) and are never sent.
func (n *Notifier) dropQueued(c *channel) {
	left := 0
drain:
	for {
		select {
		case <-c.queue:
			left++
		default:
			break drain
		}
	}
	if left > 0 {
		c.update(func(st *ChannelStatus) { st.Dropped += uint64(left) })
		c.log.Warn("notifications dropped at shutdown", "count", left)
		n.signal()
	}
}

// deliver sends m, retrying with backoff; each attempt is bounded by the channel timeout.
func (n *Notifier) deliver(ctx context.Context, c *channel, m message) {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		err := c.sender.send(actx, m)
		cancel()
		now := time.Now()
		if err == nil {
			c.update(func(st *ChannelStatus) { st.Sent++; st.LastSentTime = now })
			n.signal()
			return
		}
		c.update(func(st *ChannelStatus) { st.Failed++; st.LastError = err.Error(); st.LastErrorTime = now })
		delay, ok := c.cfg.retryDelay(attempt)
		if !ok || ctx.Err() != nil {
			c.update(func(st *ChannelStatus) {
				st.Dropped++
				if ctx.Err() == nil {
					st.DroppedRetries++
				}
			})
			c.log.Warn("notification dropped", "seq", m.Event.Seq, "name", m.Event.Name, "attempts", attempt+1, "err", err)
			n.signal()
			return
		}
		c.log.Debug("notification failed, retrying", "seq", m.Event.Seq, "attempt", attempt+1, "in", delay, "err", err)
		n.signal()
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			c.update(func(st *ChannelStatus) { st.Dropped++ })
			n.signal()
			return
		case <-t.C:
		}
	}
}
