package fossim

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/redundantd/redundantd/berofos"
)

// emitLocked records syslog messages and, when the device has syslog on and a log host, sends
// them from the GBL4 socket as "<134>berofos:NN: text" (facility local0, severity info).
func (s *Sim) emitLocked(codes ...int) {
	for _, c := range codes {
		msg := fmt.Sprintf("berofos:%02d: %s", c, syslogText[c])
		s.messages = append(s.messages, msg)
		s.log.Info("fossim: syslog", "line", msg)
		if s.vals["3_log"] != "1" || s.udp == nil {
			continue
		}
		host, err := netip.ParseAddr(s.vals["3_loghost"])
		if err != nil || host.IsUnspecified() {
			continue
		}
		port := atoi(s.vals["3_logport"])
		dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(host, uint16(port)))
		if _, err := s.udp.WriteTo([]byte("<134>"+msg), dst); err != nil {
			s.log.Debug("fossim: syslog send failed", "err", err)
		}
	}
}

// ServeHTTP answers the device's web interface: /config.txt and "/?cmd=N&param=value" sets.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down, delay, garbage := s.down, s.delay, s.garbage
	s.mu.Unlock()
	if down {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.tickLocked(now)
	if s.flashMode {
		http.Error(w, "flash mode", http.StatusServiceUnavailable)
		return
	}
	if s.vals["3_pwd"] == "1" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="berofos"`)
		http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
		return
	}
	if garbage {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("\x00\x13<html>garbage \xff\xfe\n=\n"))
		return
	}
	switch r.URL.Path {
	case "/config.txt":
		w.Header().Set("Content-Type", "text/plain")
		w.Write(s.configTxtLocked(now))
	case "/":
		if r.URL.Query().Has("cmd") {
			s.setLocked(now, r)
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<html><body><h1>berofos %s</h1><p>relay mode %s</p></body></html>\n",
			s.vals["3_dn"], s.vals["4_mode"])
	default:
		http.NotFound(w, r)
	}
}

func (s *Sim) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	return ok && user == "admin" && subtle.ConstantTimeCompare([]byte(pass), []byte(s.password)) == 1
}

// setLocked applies a "/?cmd=N&param=value..." request. Like the device it answers the page
// whatever happens; values it cannot use are ignored (a client sees it on read-back).
func (s *Sim) setLocked(now time.Time, r *http.Request) {
	q := r.URL.Query()
	cmd, err := strconv.Atoi(q.Get("cmd"))
	if err != nil {
		return
	}
	rec := func(name, value string) {
		s.sets = append(s.sets, SetRecord{At: now, Query: r.URL.RawQuery, Key: name, Value: value})
	}
	if s.ignoreSets {
		rec("", "")
		return
	}
	apply := func(k berofos.Key, value string) {
		rec(k.Name, value)
		codes, err := s.applySetLocked(now, k, value)
		if err != nil {
			s.log.Debug("fossim: set ignored", "key", k.Name, "err", err)
			return
		}
		s.emitLocked(codes...)
	}
	for _, k := range berofos.Keys {
		if k.Cmd != cmd {
			continue
		}
		if k.Param == "" { // a trigger (smtptest)
			apply(k, "")
			continue
		}
		if k.Fixed != "" {
			fk, fv, _ := strings.Cut(k.Fixed, "=")
			if q.Get(fk) != fv {
				continue
			}
		}
		if q.Has(k.Param) {
			apply(k, q.Get(k.Param))
		}
	}
}

// ServeUDP answers GBL4 requests on conn until ctx is done or conn fails. Syslog messages
// are sent from conn too.
func (s *Sim) ServeUDP(ctx context.Context, conn net.PacketConn) error {
	s.mu.Lock()
	s.udp = conn
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fossim: udp: %w", err)
		}
		reply := s.handleUDP(buf[:n])
		if reply == nil {
			continue
		}
		s.mu.Lock()
		delay := s.delay
		s.mu.Unlock()
		if delay > 0 {
			time.AfterFunc(delay, func() { conn.WriteTo(reply, from) })
			continue
		}
		if _, err := conn.WriteTo(reply, from); err != nil {
			s.log.Debug("fossim: udp reply failed", "err", err)
		}
	}
}

// handleUDP returns the reply to one datagram, or nil.
func (s *Sim) handleUDP(b []byte) []byte {
	var f berofos.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil
	}
	now := time.Now()
	s.tickLocked(now)
	if s.garbage {
		return []byte{'G', 'B', 'L', 0x04, byte(f.Cmd), 0xde, 0xad}
	}
	mine := s.mine
	switch f.Cmd {
	case berofos.CmdScan:
		if len(f.Payload) != 0 {
			return nil
		}
		return s.scanReplyLocked()
	case berofos.CmdPing, berofos.CmdKick:
		var q berofos.Request
		if q.UnmarshalBinary(b) != nil || !mine(q.MAC) {
			return nil
		}
		if q.Cmd == berofos.CmdKick && !s.flashMode {
			s.kicks++
			if s.vals["6_wstate"] == strconv.Itoa(berofos.WatchdogOn) {
				s.wdDue = now.Add(s.wdogInterval())
			}
		}
		return echoFrame(q.Cmd)
	}
	if !s.flashMode {
		return nil // netconf, flash and reset work only in flash mode
	}
	return s.flashCmdLocked(f.Cmd, b, now)
}

// mine reports whether a request names this device.
func (s *Sim) mine(mac net.HardwareAddr) bool { return string(mac) == string(s.cfg.MAC) }

// echoFrame is the bare frame of command c, the answer to a ping, a kick and the flash steps.
func echoFrame(c berofos.Cmd) []byte {
	out, _ := (&berofos.Frame{Cmd: c}).MarshalBinary()
	return out
}

// flashCmdLocked answers the commands of flash mode (netconf, reset, the flash steps).
func (s *Sim) flashCmdLocked(cmd berofos.Cmd, b []byte, now time.Time) []byte {
	mine := s.mine
	switch cmd {
	case berofos.CmdNetconf:
		var n berofos.Netconf
		if n.UnmarshalBinary(b) != nil || !mine(n.MAC) {
			return nil
		}
		s.vals["3_ip"], s.vals["3_nm"], s.vals["3_gw"] = n.IP.String(), n.Netmask.String(), n.Gateway.String()
		s.vals["3_dhcp"] = strconv.Itoa(int(n.Options & berofos.OptionDHCP))
		s.vals["3_pwd"] = strconv.Itoa(int(n.Options&berofos.OptionHTTPAuth) >> 1)
		s.vals["3_port"] = strconv.Itoa(int(n.HTTPPort))
		out, _ := (&berofos.Result{Cmd: berofos.CmdNetconf, MAC: s.cfg.MAC}).MarshalBinary()
		return out
	case berofos.CmdReset:
		var q berofos.Request
		if q.UnmarshalBinary(b) != nil || !mine(q.MAC) {
			return nil
		}
		out, _ := (&berofos.Result{Cmd: berofos.CmdReset, MAC: s.cfg.MAC}).MarshalBinary()
		s.flashMode = false
		s.powerUp(now, nil)
		s.emitLocked(0)
		return out
	case berofos.CmdFlashPrepare:
		var p berofos.FlashPrepare
		if p.UnmarshalBinary(b) != nil || !mine(p.MAC) {
			return nil
		}
		s.flash.pages, s.flash.checksum = int(p.Pages), p.Checksum
		s.flash.data = map[int][berofos.PageSize]byte{}
		return echoFrame(cmd)
	case berofos.CmdFlashPage:
		var p berofos.FlashPage
		if p.UnmarshalBinary(b) != nil || !mine(p.MAC) || s.flash.data == nil || int(p.Page) >= s.flash.pages {
			return nil
		}
		s.flash.data[int(p.Page)] = p.Data
		if len(s.flash.data) == s.flash.pages {
			var img []byte
			var sum byte
			for i := 0; i < s.flash.pages; i++ {
				pg := s.flash.data[i]
				img = append(img, pg[:]...)
				for _, c := range pg {
					sum ^= c
				}
			}
			if sum == s.flash.checksum {
				s.flash.image = img
			}
			s.flash.data = nil
		}
		return echoFrame(cmd)
	}
	return nil
}

func (s *Sim) scanReplyLocked() []byte {
	parse := func(k string) netip.Addr {
		a, err := netip.ParseAddr(s.vals[k])
		if err != nil || !a.Is4() {
			return netip.IPv4Unspecified()
		}
		return a
	}
	var opt uint8
	if s.vals["3_dhcp"] == "1" {
		opt |= berofos.OptionDHCP
	}
	if s.vals["3_pwd"] == "1" {
		opt |= berofos.OptionHTTPAuth
	}
	r := berofos.ScanReply{
		MAC: s.cfg.MAC, HWMagic: berofos.HWMagic1,
		BootMajor: s.cfg.BootMajor, BootMinor: s.cfg.BootMinor, FWMajor: s.cfg.FWMajor, FWMinor: s.cfg.FWMinor,
		IP: parse("3_ip"), Netmask: parse("3_nm"), Gateway: parse("3_gw"),
		PhyConf: 0, PhyState: berofos.PhyStateLink | berofos.PhyState100M | berofos.PhyStateFull,
		Options: opt, HTTPPort: uint16(atoi(s.vals["3_port"])),
	}
	if s.flashMode {
		r.DevMode = berofos.DevModeFlash
	}
	out, err := r.MarshalBinary()
	if err != nil {
		return nil
	}
	return out
}

// Run serves HTTP on httpLn and GBL4 on udpConn (either may be nil) and runs the watchdog
// until ctx is done; it closes both. When Config.HTTPPort was 0 the reported port becomes
// httpLn's.
func (s *Sim) Run(ctx context.Context, httpLn net.Listener, udpConn net.PacketConn) error {
	if httpLn == nil && udpConn == nil {
		return errors.New("fossim: nothing to serve")
	}
	s.mu.Lock()
	if s.cfg.HTTPPort == 0 && httpLn != nil {
		if ap, err := netip.ParseAddrPort(httpLn.Addr().String()); err == nil {
			s.httpPort = ap.Port()
			s.vals["3_port"] = strconv.Itoa(int(ap.Port()))
		}
	}
	if udpConn != nil {
		s.udp = udpConn
	}
	s.emitLocked(0)
	s.mu.Unlock()

	errc := make(chan error, 2)
	n := 0
	var srv *http.Server
	if httpLn != nil {
		srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
		n++
		go func() {
			err := srv.Serve(httpLn)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if udpConn != nil {
		n++
		go func() { errc <- s.ServeUDP(uctx, udpConn) }()
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var first error
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case now := <-t.C:
			s.Tick(now)
		case err := <-errc:
			n--
			if err != nil {
				first = err
				done = true
			}
		}
	}
	cancel()
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		srv.Shutdown(sctx)
		scancel()
		srv.Close()
	}
	for ; n > 0; n-- {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	if udpConn != nil {
		udpConn.Close()
	}
	return first
}
