package testlab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrSIPRefused says that a SIP request got a final answer other than 2xx.
var ErrSIPRefused = errors.New("sip request refused")

// sipRetransmit is how often SIPPing repeats its OPTIONS while unanswered: a fixed, short
// interval rather than RFC 3261's doubling T1, so that the first answer after a failover is
// seen within this much of the server's coming up.
const sipRetransmit = 50 * time.Millisecond

// SIPPing sends a SIP OPTIONS (RFC 3261 section 11) from node from to addr over UDP, repeated
// every 50 ms until a final answer or the end of ctx, and returns when a 2xx answer arrived.
// Another final answer is ErrSIPRefused with its status line.
func SIPPing(ctx context.Context, from *Node, addr netip.AddrPort) (time.Time, error) {
	c, err := from.DialContext(ctx, "udp4", addr.String())
	if err != nil {
		return time.Time{}, fmt.Errorf("testlab: OPTIONS to %s from %s: %w", addr, from.Name, err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr)
	callID := randHex(8)
	req := fmt.Sprintf("OPTIONS sip:check@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:probe@%s>;tag=%s\r\n"+
		"To: <sip:check@%s>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 OPTIONS\r\n"+
		"Accept: application/sdp\r\n"+
		"Content-Length: 0\r\n\r\n",
		addr, local, randHex(8), local.IP, randHex(4), addr, callID)
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		if ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("testlab: OPTIONS to %s from %s unanswered: %w", addr, from.Name, ctx.Err())
		}
		// A write error (ICMP port unreachable reported on the connected socket: nothing
		// listens yet) is retried like a lost datagram.
		c.Write([]byte(req))
		c.SetReadDeadline(time.Now().Add(sipRetransmit))
		for {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			at := time.Now()
			code, status, ok := parseSIPResponse(buf[:n], callID)
			switch {
			case !ok || code < 200:
				continue
			case code < 300:
				return at, nil
			default:
				return time.Time{}, fmt.Errorf("testlab: OPTIONS to %s: %w: %s", addr, ErrSIPRefused, status)
			}
		}
	}
}

// parseSIPResponse returns the status code and line of a SIP response carrying callID.
func parseSIPResponse(b []byte, callID string) (int, string, bool) {
	line, rest, _ := bytes.Cut(b, []byte("\r\n"))
	f := strings.Fields(string(line))
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return 0, "", false
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, "", false
	}
	for _, h := range strings.Split(string(rest), "\r\n") {
		name, val, ok := strings.Cut(h, ":")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if (name == "call-id" || name == "i") && strings.TrimSpace(val) == callID {
			return code, string(line), true
		}
	}
	return 0, "", false
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// baresipModulePath is where Debian's baresip-core keeps its modules.
const baresipModulePath = "/usr/lib/baresip/modules"

// PhoneConfig shapes one phone.
type PhoneConfig struct {
	User      string         // the SIP user, e.g. "alice": registers sip:alice@<registrar>
	Registrar netip.AddrPort // the PBX's virtual IP and port; port 0 means 5060
	Expiry    time.Duration  // the registration's expiry; default 3600 s
}

// Phone is a baresip user agent in a node, driven through its ctrl_tcp interface. It answers
// calls at once (answermode=auto) and counts the REGISTERs it sent.
type Phone struct {
	User string
	AOR  string // sip:user@registrar
	Node *Node
	Proc *Process
	Addr netip.AddrPort // its SIP address

	ctrl net.Conn

	mu        sync.Mutex
	registers int // REGISTER transactions ended (answered, refused or timed out)
	regOK     int
	regOKAt   time.Time // when the log reported the last 200 to a REGISTER
	events    []phoneEvent
	notify    chan struct{}
	resp      map[string]chan phoneMsg
	token     int
}

type phoneEvent struct {
	Type  string
	Param string
	At    time.Time
}

type phoneMsg struct {
	Event    bool   `json:"event"`
	Response bool   `json:"response"`
	OK       bool   `json:"ok"`
	Data     string `json:"data"`
	Token    string `json:"token"`
	Type     string `json:"type"`
	Param    string `json:"param"`
}

var phonePorts struct {
	sync.Mutex
	next map[*Node]int
}

// StartPhone starts a baresip phone in node n registering cfg.User at cfg.Registrar, and
// returns once its first registration is answered 200 (or fails when refused or ctx ends).
// Each phone in a node gets its own SIP port (5070, 5080, ...) and control port.
func (n *Node) StartPhone(ctx context.Context, cfg PhoneConfig) (*Phone, error) {
	if cfg.User == "" || strings.ContainsAny(cfg.User, "@:;<> \t/") {
		return nil, fmt.Errorf("testlab: phone user %q: want a plain SIP user name", cfg.User)
	}
	if !cfg.Registrar.Addr().Is4() {
		return nil, fmt.Errorf("testlab: phone %s: registrar %v: want an IPv4 address", cfg.User, cfg.Registrar)
	}
	if cfg.Registrar.Port() == 0 {
		cfg.Registrar = netip.AddrPortFrom(cfg.Registrar.Addr(), 5060)
	}
	if cfg.Expiry == 0 {
		cfg.Expiry = 3600 * time.Second
	}
	phonePorts.Lock()
	if phonePorts.next == nil {
		phonePorts.next = map[*Node]int{}
	}
	i := phonePorts.next[n]
	phonePorts.next[n] = i + 1
	phonePorts.Unlock()
	// baresip binds its SIP port on UDP and TCP and the next one for TLS.
	sipPort, ctrlPort := 5070+10*i, 4440+i

	dir := filepath.Join(n.lab.Dir, n.Name, "phone-"+cfg.User)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	reg := cfg.Registrar.Addr().String()
	if cfg.Registrar.Port() != 5060 {
		reg = cfg.Registrar.String()
	}
	aor := "sip:" + cfg.User + "@" + reg
	conf := strings.Join([]string{
		"poll_method epoll",
		fmt.Sprintf("sip_listen %s:%d", n.Addr, sipPort),
		"dns_server 127.0.0.1:53",
		"module_path " + baresipModulePath,
		"module g711.so",
		"module_app account.so",
		"module_app menu.so",
		"module ctrl_tcp.so",
		fmt.Sprintf("ctrl_tcp_listen 127.0.0.1:%d", ctrlPort),
		"",
	}, "\n")
	account := fmt.Sprintf("<%s>;auth_pass=lab;regint=%d;answermode=auto\n", aor, int(cfg.Expiry/time.Second))
	for name, body := range map[string]string{"config": conf, "accounts": account} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return nil, fmt.Errorf("testlab: %w", err)
		}
	}
	p := &Phone{User: cfg.User, AOR: aor, Node: n, Addr: netip.AddrPortFrom(n.Addr, uint16(sipPort)),
		notify: make(chan struct{}), resp: map[string]chan phoneMsg{}}
	proc, err := n.startProcess("baresip-"+cfg.User+"@"+n.Name, dir, exec.Command("baresip", "-f", dir), p.onLine)
	if err != nil {
		return nil, err
	}
	p.Proc = proc
	if err := p.connect(ctx, ctrlPort); err != nil {
		proc.kill()
		return nil, err
	}
	if err := p.WaitRegistered(ctx, 1); err != nil {
		proc.kill()
		return nil, err
	}
	return p, nil
}

// onLine counts the phone's REGISTER transactions from its log: baresip prints every answered
// one as "<aor>: {0/UDP/v4} 200 OK (...) [1 binding]" and every failed one as "reg: <aor>: ...".
// The log is used rather than ctrl_tcp events because the first REGISTER is sent before the
// control connection can be made.
func (p *Phone) onLine(line string) {
	ok := strings.Contains(line, ": {0/UDP/v4} ")
	failed := strings.HasPrefix(line, "reg: ") || strings.Contains(line, "reg: sip:")
	if !ok && !failed {
		return
	}
	p.mu.Lock()
	p.registers++
	if ok && strings.Contains(line, "} 200 ") {
		p.regOK++
		p.regOKAt = time.Now()
	}
	p.bump()
	p.mu.Unlock()
}

// bump wakes the waiters; p.mu is held.
func (p *Phone) bump() {
	close(p.notify)
	p.notify = make(chan struct{})
}

func (p *Phone) connect(ctx context.Context, port int) error {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for {
		c, err := p.Node.DialContext(ctx, "tcp4", addr)
		if err == nil {
			p.ctrl = c
			go p.readCtrl(c)
			return nil
		}
		if done, exitErr := p.Proc.Exited(); done {
			return fmt.Errorf("testlab: %s exited (%v):\n%s", p.Proc.Name, exitErr, tail(p.Proc.Output(), 20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testlab: %s: control port %s: %w (last: %v)", p.Proc.Name, addr, ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// readCtrl reads baresip's netstrings ("<len>:<json>,") until the connection ends.
func (p *Phone) readCtrl(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		lenStr, err := r.ReadString(':')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(lenStr, ":")))
		if err != nil || n < 0 || n > 1<<20 {
			return
		}
		b := make([]byte, n+1)
		if _, err := io.ReadFull(r, b); err != nil {
			return
		}
		var m phoneMsg
		if err := json.Unmarshal(b[:n], &m); err != nil {
			continue
		}
		p.mu.Lock()
		if m.Response {
			if ch, ok := p.resp[m.Token]; ok {
				ch <- m
				delete(p.resp, m.Token)
			}
		} else if m.Event {
			p.events = append(p.events, phoneEvent{Type: m.Type, Param: m.Param, At: time.Now()})
			p.bump()
		}
		p.mu.Unlock()
	}
}

// command sends one ctrl_tcp command and waits for its response.
func (p *Phone) command(ctx context.Context, cmd, params string) (string, error) {
	p.mu.Lock()
	p.token++
	tok := strconv.Itoa(p.token)
	ch := make(chan phoneMsg, 1)
	p.resp[tok] = ch
	p.mu.Unlock()
	b, _ := json.Marshal(map[string]string{"command": cmd, "params": params, "token": tok})
	msg := append([]byte(strconv.Itoa(len(b))+":"), b...)
	msg = append(msg, ',')
	if _, err := p.ctrl.Write(msg); err != nil {
		return "", fmt.Errorf("testlab: %s: %s: %w", p.Proc.Name, cmd, err)
	}
	select {
	case m := <-ch:
		if !m.OK {
			return m.Data, fmt.Errorf("testlab: %s: %s %s: refused: %s", p.Proc.Name, cmd, params, m.Data)
		}
		return m.Data, nil
	case <-ctx.Done():
		return "", fmt.Errorf("testlab: %s: %s: %w", p.Proc.Name, cmd, ctx.Err())
	}
}

// Registers is the number of REGISTER transactions the phone has completed (answered or
// failed) since it started: 1 after StartPhone, and still 1 after a failover that needed no
// re-registration.
func (p *Phone) Registers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.registers
}

// Registered reports whether the phone's last REGISTER was answered 200.
func (p *Phone) Registered() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.regOK > 0 && p.regOK == p.registers
}

// RegisteredAt is when the phone's last REGISTER answered 200 was reported in its log (a few
// milliseconds after the answer arrived; zero before the first).
func (p *Phone) RegisteredAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.regOKAt
}

// WaitRegistered waits until the phone has had n registrations answered 200; a failed one
// ends the wait with an error.
func (p *Phone) WaitRegistered(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		ok, all, notify := p.regOK, p.registers, p.notify
		p.mu.Unlock()
		if all > ok {
			return fmt.Errorf("testlab: %s: REGISTER failed:\n%s", p.Proc.Name, tail(p.Proc.Output(), 10))
		}
		if ok >= n {
			return nil
		}
		select {
		case <-notify:
		case <-p.Proc.Done():
			return fmt.Errorf("testlab: %s exited before registering:\n%s", p.Proc.Name, tail(p.Proc.Output(), 20))
		case <-ctx.Done():
			return fmt.Errorf("testlab: %s: waiting for REGISTER 200: %w", p.Proc.Name, ctx.Err())
		}
	}
}

// Call calls user (at the phone's registrar) and returns when the call was answered (200 to
// the INVITE, relayed through the registrar), then hangs up. A call the network ends first
// (404 for a user the registrar does not know, 408, 503) is an error naming the reason.
func (p *Phone) Call(ctx context.Context, user string) (time.Time, error) {
	_, host, _ := strings.Cut(p.AOR, "@")
	uri := "sip:" + user + "@" + host
	p.mu.Lock()
	seen := len(p.events)
	p.mu.Unlock()
	if _, err := p.command(ctx, "dial", uri); err != nil {
		return time.Time{}, err
	}
	for {
		p.mu.Lock()
		evs, notify := p.events[seen:], p.notify
		seen = len(p.events)
		p.mu.Unlock()
		for _, e := range evs {
			switch e.Type {
			case "CALL_ESTABLISHED":
				if _, err := p.command(ctx, "hangup", ""); err != nil {
					return e.At, err
				}
				return e.At, p.waitEvent(ctx, "CALL_CLOSED", seen)
			case "CALL_CLOSED":
				return time.Time{}, fmt.Errorf("testlab: %s: call to %s: %w: %s", p.Proc.Name, uri, ErrSIPRefused, e.Param)
			}
		}
		select {
		case <-notify:
		case <-p.Proc.Done():
			return time.Time{}, fmt.Errorf("testlab: %s exited during a call:\n%s", p.Proc.Name, tail(p.Proc.Output(), 20))
		case <-ctx.Done():
			p.command(context.Background(), "hangup", "")
			return time.Time{}, fmt.Errorf("testlab: %s: call to %s unanswered: %w", p.Proc.Name, uri, ctx.Err())
		}
	}
}

// waitEvent waits for an event of type typ at index from or later.
func (p *Phone) waitEvent(ctx context.Context, typ string, from int) error {
	for {
		p.mu.Lock()
		for ; from < len(p.events); from++ {
			if p.events[from].Type == typ {
				p.mu.Unlock()
				return nil
			}
		}
		notify := p.notify
		p.mu.Unlock()
		select {
		case <-notify:
		case <-ctx.Done():
			return fmt.Errorf("testlab: %s: waiting for %s: %w", p.Proc.Name, typ, ctx.Err())
		}
	}
}
