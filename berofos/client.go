package berofos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors of the HTTP and UDP clients.
var (
	ErrAuth       = errors.New("berofos: authentication failed")
	ErrHTTPStatus = errors.New("berofos: unexpected HTTP status")
	ErrNotApplied = errors.New("berofos: set did not take")
	ErrNoReply    = errors.New("berofos: no reply")
	ErrDevice     = errors.New("berofos: device reported an error")
)

// DefaultTimeout is bnfos's per-request timeout.
const DefaultTimeout = 3 * time.Second

// ClientOptions configures a Client. The zero value is usable.
type ClientOptions struct {
	// Timeout bounds each HTTP request and each UDP exchange; 0 means DefaultTimeout.
	Timeout time.Duration
	// UserAgent defaults to "libbnfos", as bnfos sends it.
	UserAgent string
	// Dial opens the HTTP connections; nil means a net.Dialer. Labs that run the client in
	// a network namespace pass a dialer that opens its sockets there.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ListenPacket opens the UDP socket of one GBL4 exchange; nil means udp4 on an
	// ephemeral port of every address.
	ListenPacket func(ctx context.Context) (net.PacketConn, error)
	// Retransmit is how often an unanswered GBL4 request is sent again within Timeout;
	// 0 means 500ms.
	Retransmit time.Duration
	Logger     *slog.Logger
}

// Client speaks to berofos devices over HTTP (config.txt, sets) and UDP (GBL4). It is safe
// for concurrent use; one Client serves any number of devices.
type Client struct {
	opt  ClientOptions
	http *http.Client
	log  *slog.Logger

	mu       sync.Mutex
	needAuth map[string]bool // host -> answered 401 before: send credentials up front
}

// NewClient returns a Client.
func NewClient(o ClientOptions) *Client {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = "libbnfos"
	}
	if o.Retransmit <= 0 {
		o.Retransmit = 500 * time.Millisecond
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	if o.ListenPacket == nil {
		o.ListenPacket = func(ctx context.Context) (net.PacketConn, error) {
			var lc net.ListenConfig
			return lc.ListenPacket(ctx, "udp4", ":0")
		}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		DialContext:         o.Dial,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		Proxy:               nil, // a relay box on the LAN is never reached through a proxy
	}
	return &Client{
		opt:      o,
		http:     &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:      log,
		needAuth: map[string]bool{},
	}
}

// Close releases idle HTTP connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// get performs one GET with bnfos's authentication flow: no credentials first; on a 401 with
// a Basic challenge, once more with the device's login. A 401 after that is ErrAuth. Hosts
// that asked for credentials once get them up front afterwards, saving a round trip.
func (c *Client) get(ctx context.Context, d Device, pathQuery string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	c.mu.Lock()
	withAuth := c.needAuth[d.Host] && d.Login != ""
	c.mu.Unlock()
	for {
		body, status, challenge, err := c.do(ctx, d, pathQuery, withAuth)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("GET %s: no answer within %v: %w", pathQuery, c.opt.Timeout, err)
			}
			return nil, fmt.Errorf("GET %s: %w", pathQuery, err)
		}
		if status == http.StatusUnauthorized {
			switch {
			case withAuth:
				return nil, fmt.Errorf("%w: device refused login %q (wrong user or password)", ErrAuth, loginUser(d.Login))
			case d.Login == "":
				return nil, fmt.Errorf("%w: device requires a password and no login is configured", ErrAuth)
			case !strings.HasPrefix(strings.ToLower(challenge), "basic"):
				return nil, fmt.Errorf("%w: device asked for unsupported authentication %q", ErrAuth, challenge)
			}
			c.mu.Lock()
			c.needAuth[d.Host] = true
			c.mu.Unlock()
			withAuth = true
			continue
		}
		if status < 200 || status > 299 {
			return nil, fmt.Errorf("%w: GET %s: %d %s", ErrHTTPStatus, pathQuery, status, http.StatusText(status))
		}
		return body, nil
	}
}

func loginUser(login string) string {
	u, _, _ := strings.Cut(login, ":")
	return u
}

func (c *Client) do(ctx context.Context, d Device, pathQuery string, withAuth bool) (body []byte, status int, challenge string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.Host+pathQuery, nil)
	if err != nil {
		return nil, 0, "", err
	}
	req.Header.Set("User-Agent", c.opt.UserAgent)
	if withAuth {
		user, pass, _ := strings.Cut(d.Login, ":")
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, MaxConfigSize+1))
	if err != nil {
		return nil, 0, "", fmt.Errorf("reading answer: %w", err)
	}
	return body, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), nil
}

// ReadConfig fetches and parses the device's /config.txt.
func (c *Client) ReadConfig(ctx context.Context, d Device) (*ConfigTxt, error) {
	body, err := c.get(ctx, d, "/config.txt")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	cfg, err := ParseConfigTxt(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	return cfg, nil
}

// SetQuery returns the path and query that set a key, e.g. "/?cmd=4&mode=1". The value must
// be normalized (Key.Normalize).
func SetQuery(k Key, value string) string {
	q := "/?cmd=" + strconv.Itoa(k.Cmd)
	if k.Fixed != "" {
		q += "&" + k.Fixed
	}
	if k.Param != "" {
		q += "&" + k.Param + "=" + strings.ReplaceAll(url.QueryEscape(value), "+", "%20")
	}
	return q
}

// Set writes one key ("mode", "wdog", ...) and reads config.txt back to confirm it: a value
// that did not take is ErrNotApplied. Keys the device does not report (apwd, smtptest) are
// sent without confirmation and return a nil ConfigTxt. The read-back config is returned.
func (c *Client) Set(ctx context.Context, d Device, name, value string) (*ConfigTxt, error) {
	k, err := LookupKey(name)
	if err != nil {
		return nil, err
	}
	v, err := k.Normalize(value)
	if err != nil {
		return nil, err
	}
	if _, err := c.get(ctx, d, SetQuery(k, v)); err != nil {
		return nil, fmt.Errorf("%s: set %s=%s: %w", d, name, v, err)
	}
	if !k.Verifiable() {
		return nil, nil
	}
	cfg, err := c.ReadConfig(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("confirming %s=%s: %w", name, v, err)
	}
	got, err := cfg.Get(name)
	if err != nil {
		return cfg, fmt.Errorf("%s: confirming %s=%s: %w", d, name, v, err)
	}
	if got != v {
		return cfg, fmt.Errorf("%w: %s: %s=%s sent, device reports %s", ErrNotApplied, d, name, v, got)
	}
	return cfg, nil
}

// SetMode sets the relay mode (0 A-D, 1 A-B) and confirms it by read-back.
func (c *Client) SetMode(ctx context.Context, d Device, mode int) (*ConfigTxt, error) {
	return c.Set(ctx, d, "mode", strconv.Itoa(mode))
}

// udpTarget resolves the GBL4 address of a device: the host of its HTTP address, port
// d.UDPPort or 50123.
func udpTarget(ctx context.Context, d Device) (netip.AddrPort, error) {
	host := d.Host
	if h, _, err := net.SplitHostPort(d.Host); err == nil {
		host = h
	}
	port := d.UDPPort
	if port == 0 {
		port = UDPPort
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("%s: resolving %q: %w", d, host, err)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(port)), nil
}

// exchange sends req to dst, resending every Retransmit, until accept returns true for a
// reply or the timeout expires. accept sees only valid GBL4 frames from dst's address (any
// address when dst is the broadcast address); it returns done to stop.
func (c *Client) exchange(ctx context.Context, dst netip.AddrPort, req []byte, timeout time.Duration, accept func(src netip.Addr, b []byte) (done bool)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.opt.ListenPacket(ctx)
	if err != nil {
		return fmt.Errorf("gbl4: opening socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	to := net.UDPAddrFromAddrPort(dst)
	anySource := dst.Addr() == netip.AddrFrom4([4]byte{255, 255, 255, 255})
	send := func() error {
		_, err := conn.WriteTo(req, to)
		return err
	}
	if err := send(); err != nil {
		return fmt.Errorf("gbl4: sending to %v: %w", dst, err)
	}
	nextSend := time.Now().Add(c.opt.Retransmit)
	buf := make([]byte, 2048)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		dl := nextSend
		if d, ok := ctx.Deadline(); ok && d.Before(dl) {
			dl = d
		}
		conn.SetReadDeadline(dl)
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !nextSend.After(time.Now()) {
					if err := send(); err != nil {
						return fmt.Errorf("gbl4: sending to %v: %w", dst, err)
					}
					nextSend = time.Now().Add(c.opt.Retransmit)
				}
				continue
			}
			return fmt.Errorf("gbl4: receiving: %w", err)
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		src := ua.AddrPort().Addr().Unmap()
		if !anySource && src != dst.Addr() {
			c.log.Debug("gbl4: reply from another host ignored", "from", src, "want", dst.Addr())
			continue
		}
		var f Frame
		if err := f.UnmarshalBinary(buf[:n]); err != nil {
			c.log.Debug("gbl4: bad frame ignored", "from", src, "err", err)
			continue
		}
		if accept(src, buf[:n]) {
			return nil
		}
	}
}

// echo sends a request answered by its command echoed (ping, kick) and waits for the echo.
func (c *Client) echo(ctx context.Context, d Device, req []byte, cmd Cmd) error {
	dst, err := udpTarget(ctx, d)
	if err != nil {
		return err
	}
	err = c.exchange(ctx, dst, req, c.opt.Timeout, func(_ netip.Addr, b []byte) bool {
		var f Frame
		return f.UnmarshalBinary(b) == nil && f.Cmd == cmd
	})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("%w: %s: %v to %v unanswered within %v", ErrNoReply, d, cmd, dst, c.opt.Timeout)
	}
	if err != nil {
		return fmt.Errorf("%s: %v: %w", d, cmd, err)
	}
	return nil
}

func (c *Client) macRequest(d Device, cmd Cmd) ([]byte, error) {
	if len(d.MAC) != 6 {
		return nil, fmt.Errorf("%w: %s: %v needs the device's MAC (mac = ... in bnfos.conf)", ErrMAC, d, cmd)
	}
	q := Request{Cmd: cmd, MAC: d.MAC}
	return q.MarshalBinary()
}

// Kick sends one watchdog heartbeat and waits for the device to echo it.
func (c *Client) Kick(ctx context.Context, d Device) error {
	req, err := c.macRequest(d, CmdKick)
	if err != nil {
		return err
	}
	return c.echo(ctx, d, req, CmdKick)
}

// Ping checks that the device answers GBL4.
func (c *Client) Ping(ctx context.Context, d Device) error {
	req, err := c.macRequest(d, CmdPing)
	if err != nil {
		return err
	}
	return c.echo(ctx, d, req, CmdPing)
}

// result sends a request answered by a Result for d's MAC (netconf, reset).
func (c *Client) result(ctx context.Context, d Device, req []byte, cmd Cmd, timeout time.Duration) error {
	dst, err := udpTarget(ctx, d)
	if err != nil {
		return err
	}
	var res Result
	err = c.exchange(ctx, dst, req, timeout, func(_ netip.Addr, b []byte) bool {
		var r Result
		if r.UnmarshalBinary(b) != nil || r.Cmd != cmd || !macEqual(r.MAC, d.MAC) {
			return false
		}
		res = r
		return true
	})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("%w: %s: %v unanswered within %v (is the device in flash mode?)", ErrNoReply, d, cmd, timeout)
	}
	if err != nil {
		return fmt.Errorf("%s: %v: %w", d, cmd, err)
	}
	if res.Code != 0 {
		return fmt.Errorf("%w: %s: %v error code %d", ErrDevice, d, cmd, res.Code)
	}
	return nil
}

// ResetTimeout is how long a reset may take to be answered (bnfos waits 8s).
const ResetTimeout = 8 * time.Second

// Reset restarts a device in flash mode; it waits up to the longer of the client's timeout
// and ResetTimeout for the answer.
func (c *Client) Reset(ctx context.Context, d Device) error {
	req, err := c.macRequest(d, CmdReset)
	if err != nil {
		return err
	}
	return c.result(ctx, d, req, CmdReset, max(c.opt.Timeout, ResetTimeout))
}

// Netconf writes the network configuration of a device in flash mode (n.MAC is taken from d).
func (c *Client) Netconf(ctx context.Context, d Device, n Netconf) error {
	if len(d.MAC) != 6 {
		return fmt.Errorf("%w: %s: netconf needs the device's MAC", ErrMAC, d)
	}
	n.MAC = d.MAC
	req, err := n.MarshalBinary()
	if err != nil {
		return err
	}
	return c.result(ctx, d, req, CmdNetconf, c.opt.Timeout)
}

// Flash writes a firmware image to a device in flash mode: the prepare request, then each
// page, each confirmed by its echo. progress, if not nil, is called after each page.
func (c *Client) Flash(ctx context.Context, d Device, image []byte, progress func(done, total int)) error {
	if len(d.MAC) != 6 {
		return fmt.Errorf("%w: %s: flash needs the device's MAC", ErrMAC, d)
	}
	if len(image) == 0 {
		return fmt.Errorf("%s: flash: empty firmware image", d)
	}
	pages, sum := FirmwarePages(image)
	if len(pages) > 0xFFFF {
		return fmt.Errorf("%s: flash: image of %d bytes is too large", d, len(image))
	}
	prep := FlashPrepare{MAC: d.MAC, Pages: uint16(len(pages)), Checksum: sum}
	req, err := prep.MarshalBinary()
	if err != nil {
		return err
	}
	if err := c.echo(ctx, d, req, CmdFlashPrepare); err != nil {
		return fmt.Errorf("flash prepare (is the device in flash mode?): %w", err)
	}
	for i, p := range pages {
		fp := FlashPage{MAC: d.MAC, Page: uint16(i), Data: p}
		req, err := fp.MarshalBinary()
		if err != nil {
			return err
		}
		if err := c.echo(ctx, d, req, CmdFlashPage); err != nil {
			return fmt.Errorf("flash page %d of %d: %w", i+1, len(pages), err)
		}
		if progress != nil {
			progress(i+1, len(pages))
		}
	}
	return nil
}

// Scan asks devices to identify themselves. With host "" the request is broadcast to
// 255.255.255.255 and replies are collected until timeout; with a host, Scan returns as soon
// as that host answered. port 0 means 50123. Replies are deduplicated by MAC, in arrival order;
// replies whose hardware magic is not a berofos's (0x0050, 0x00BB) are ignored.
func (c *Client) Scan(ctx context.Context, host string, port int, timeout time.Duration) ([]ScanReply, error) {
	if timeout <= 0 {
		timeout = c.opt.Timeout
	}
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), UDPPort)
	if port != 0 {
		dst = netip.AddrPortFrom(dst.Addr(), uint16(port))
	}
	if host != "" {
		var err error
		dst, err = udpTarget(ctx, Device{Host: host, UDPPort: port})
		if err != nil {
			return nil, err
		}
	}
	req, err := (&Frame{Cmd: CmdScan}).MarshalBinary()
	if err != nil {
		return nil, err
	}
	var out []ScanReply
	seen := map[string]bool{}
	err = c.exchange(ctx, dst, req, timeout, func(src netip.Addr, b []byte) bool {
		var r ScanReply
		if err := r.UnmarshalBinary(b); err != nil {
			var f Frame
			if f.UnmarshalBinary(b) == nil && f.Cmd == CmdScan && len(f.Payload) == 0 {
				return false // our own broadcast request, looped back
			}
			c.log.Debug("gbl4: bad scan reply ignored", "from", src, "err", err)
			return false
		}
		if r.HWMagic != HWMagic1 && r.HWMagic != HWMagic2 {
			// Another beroNet product speaking GBL4 (bnfos filters the same way).
			c.log.Debug("gbl4: scan reply from a device that is not a berofos ignored", "from", src, "hwmagic", r.HWMagic)
			return false
		}
		if !seen[r.MAC.String()] {
			seen[r.MAC.String()] = true
			out = append(out, r)
		}
		return host != ""
	})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return out, err
	}
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	return out, nil
}

func macEqual(a, b net.HardwareAddr) bool {
	return len(a) == len(b) && string(a) == string(b)
}
