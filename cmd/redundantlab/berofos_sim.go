//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/redundantd/redundantd/testlab/fossim"
)

func init() {
	register("berofos-sim", "run a simulated berofos (HTTP + GBL4 UDP) until interrupted", runBerofosSim)
}

// setFlags collects repeated -set key=value flags.
type setFlags map[string]string

func (s setFlags) String() string { return fmt.Sprint(map[string]string(s)) }

func (s setFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want key=value, e.g. modedef=1")
	}
	s[k] = val
	return nil
}

func runBerofosSim(ctx context.Context, args []string) error {
	return berofosSim(ctx, args, os.Stderr)
}

// berofosSim runs the simulator; the banner naming the addresses served and the log go to
// out.
func berofosSim(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("berofos-sim", flag.ContinueOnError)
	fs.SetOutput(out)
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP `address` to serve (\"\" for none)")
	udpAddr := fs.String("udp", "127.0.0.1:50123", "GBL4 UDP `address` to serve (\"\" for none); 0.0.0.0:50123 to answer broadcast scans")
	nsName := fs.String("netns", "", "open the sockets inside this named network `namespace`")
	macStr := fs.String("mac", "00:19:32:00:12:1D", "device `mac`")
	ipStr := fs.String("ip", "", "device `address` reported in config.txt and scan replies (default: the HTTP address, else 192.0.2.10)")
	mask := fs.String("netmask", "255.255.255.0", "reported `netmask`")
	gw := fs.String("gateway", "", "reported `gateway` (default 192.0.2.1)")
	password := fs.String("password", "", "admin `password`; enables HTTP password protection")
	flash := fs.Bool("flash", false, "start in flash mode")
	syslog := fs.String("syslog", "", "send the device's syslog messages to `host:port`")
	verbose := fs.Bool("v", false, "log every request")
	sets := setFlags{}
	fs.Var(sets, "set", "initial `key=value` (bnfos key names, repeatable), e.g. -set modedef=1 -set scenario=1")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	mac, err := net.ParseMAC(*macStr)
	if err != nil {
		return fmt.Errorf("-mac: %w", err)
	}
	cfg := fossim.Config{MAC: mac, Password: *password, FlashMode: *flash, Settings: sets}
	parse := func(name, v string, dst *netip.Addr) error {
		if v == "" {
			return nil
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return fmt.Errorf("-%s: %w", name, err)
		}
		*dst = a
		return nil
	}
	if *ipStr == "" && *httpAddr != "" {
		if ap, err := netip.ParseAddrPort(*httpAddr); err == nil && ap.Addr().Is4() && !ap.Addr().IsUnspecified() {
			*ipStr = ap.Addr().String()
		}
	}
	for _, p := range []struct {
		n, v string
		a    *netip.Addr
	}{{"ip", *ipStr, &cfg.IP}, {"netmask", *mask, &cfg.Netmask}, {"gateway", *gw, &cfg.Gateway}} {
		if err := parse(p.n, p.v, p.a); err != nil {
			return err
		}
	}
	if *syslog != "" {
		ap, err := netip.ParseAddrPort(*syslog)
		if err != nil {
			return fmt.Errorf("-syslog: want ip:port: %w", err)
		}
		sets["syslog"], sets["slgip"], sets["slgpt"] = "1", ap.Addr().String(), fmt.Sprint(ap.Port())
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
	sim, err := fossim.New(cfg)
	if err != nil {
		return err
	}
	ln, pc, err := fossim.ListenIn(*nsName, *httpAddr, *udpAddr)
	if err != nil {
		return err
	}
	where := []string{}
	if ln != nil {
		where = append(where, "http://"+ln.Addr().String())
	}
	if pc != nil {
		where = append(where, "gbl4 udp "+pc.LocalAddr().String())
	}
	fmt.Fprintf(out, "berofos-sim: mac %s, mode %d, serving %s; Ctrl-C to stop\n",
		strings.ToUpper(mac.String()), sim.Mode(), strings.Join(where, ", "))
	return sim.Run(ctx, ln, pc)
}
