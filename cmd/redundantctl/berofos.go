package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redundantd/redundantd/berofos"
)

func init() {
	register("berofos", "drive berofos relay boxes (scan, get, set, show, kick, master, slave)",
		func(ctx context.Context, args []string) int { return runBerofos(ctx, args, os.Stdout, os.Stderr) })
}

const berofosUsage = `usage: redundantctl berofos <command> [flags] [args]

commands:
  scan [-x] [-h host]      find devices (broadcast, or one host); -x writes bnfos.conf
  get KEY...               print keys from the device's config.txt
  set KEY=VALUE...         set keys, each confirmed by reading it back
  show                     print every readable key
  kick [-c] [-w SECONDS]   kick the watchdog once, or every SECONDS (default 2) with -c
  master                   relay mode 1 (A-B) on every configured device, confirmed
  slave                    relay mode 0 (A-D) on every configured device, confirmed
  ping                     check that the device answers GBL4
  netconf -i IP -n MASK -g GW [-d 0|1] [-a 0|1] [-e 0|1|2] [-p PORT]
                           network setup (flash mode only; applied at the next boot)
  flash FILE               write a firmware image (flash mode only)
  reset                    restart a device in flash mode

flags (every command):
  -conf PATH   bnfos.conf (default /etc/bnfos.conf)
  -f fosN      device from bnfos.conf (default fos1)
  -h HOST      device address (host or host:port) instead of bnfos.conf
  -m MAC       device MAC (GBL4 commands)      -u USER:PASSWORD   HTTP login
  -t SECONDS   timeout per request, 0.01 to 60 (default 3)
  -json        machine-readable output

exit status: 0 done, 1 the device failed or did not answer (also scan -h when
nothing answers), 2 a usage error (bad flag, bad -t or -w)

keys: ` + "%s\n"

// ctlFlags are the flags every berofos subcommand takes.
type ctlFlags struct {
	conf, name, host, mac, login string
	timeout                      float64
	udpPort                      int
	json                         bool
}

func (f *ctlFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.conf, "conf", berofos.DefaultConfPath, "bnfos.conf `path`")
	fs.StringVar(&f.name, "f", "fos1", "device `name` in bnfos.conf")
	fs.StringVar(&f.host, "h", "", "device `host` or host:port (instead of bnfos.conf)")
	fs.StringVar(&f.mac, "m", "", "device `mac`")
	fs.StringVar(&f.login, "u", "", "HTTP login `user:password`")
	fs.Float64Var(&f.timeout, "t", 3, "timeout per request in `seconds`")
	fs.IntVar(&f.udpPort, "udp-port", 0, "GBL4 `port` (default 50123; for simulators)")
	fs.BoolVar(&f.json, "json", false, "JSON output")
}

// Limits of the -t and -w flags. The client would replace a zero or negative timeout by its
// default without a word, and a huge one overflows time.Duration; both are usage errors.
const (
	minTimeout  = 10 * time.Millisecond // as berofos.timeout in redundantd.toml
	maxTimeout  = time.Minute
	minKickWait = 10 * time.Millisecond
	maxKickWait = time.Hour
)

// seconds converts a flag given in seconds to a duration within lo..hi, or says why not.
func seconds(flagName string, v float64, lo, hi time.Duration) (time.Duration, error) {
	// NaN fails both comparisons, so it is refused too.
	if !(v >= lo.Seconds() && v <= hi.Seconds()) {
		return 0, fmt.Errorf("%s %v: want %g to %g seconds", flagName, v, lo.Seconds(), hi.Seconds())
	}
	return time.Duration(v * float64(time.Second)), nil
}

func (f *ctlFlags) timeoutDuration() time.Duration {
	return time.Duration(f.timeout * float64(time.Second))
}

func (f *ctlFlags) client() *berofos.Client {
	return berofos.NewClient(berofos.ClientOptions{Timeout: f.timeoutDuration()})
}

// device resolves the device the flags name: -h, or the -f section of bnfos.conf, with -m
// and -u overriding its mac and login.
// readConfig reads config.txt from the device the flags name.
func (f *ctlFlags) readConfig(ctx context.Context) (berofos.Device, *berofos.ConfigTxt, error) {
	d, err := f.device()
	if err != nil {
		return d, nil, err
	}
	cl := f.client()
	defer cl.Close()
	cfg, err := cl.ReadConfig(ctx, d)
	return d, cfg, err
}

func (f *ctlFlags) device() (berofos.Device, error) {
	var d berofos.Device
	if f.host != "" {
		d = berofos.Device{Name: f.host, Host: f.host}
	} else {
		devs, err := berofos.LoadConf(f.conf)
		if err != nil {
			return d, err
		}
		if d, err = berofos.FindDevice(devs, f.name); err != nil {
			return d, fmt.Errorf("%s: %w", f.conf, err)
		}
	}
	if f.mac != "" {
		mac, err := net.ParseMAC(f.mac)
		if err != nil || len(mac) != 6 {
			return d, fmt.Errorf("-m %q: want XX:XX:XX:XX:XX:XX", f.mac)
		}
		d.MAC = mac
	}
	if f.login != "" {
		d.Login = f.login
	}
	d.UDPPort = f.udpPort
	return d, nil
}

// cli carries a subcommand's output streams.
type cli struct {
	stdout, stderr io.Writer
	json           bool
}

func (c *cli) fail(err error) int {
	if c.json {
		json.NewEncoder(c.stdout).Encode(map[string]string{"error": err.Error()})
	}
	fmt.Fprintln(c.stderr, "redundantctl berofos:", err)
	return 1
}

func (c *cli) emitJSON(v any) {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func keyNames() string {
	var names []string
	for _, k := range berofos.Keys {
		names = append(names, k.Name)
	}
	return strings.Join(names, " ")
}

// subFlags are the flags of one subcommand, beyond ctlFlags.
type subFlags struct {
	write, continuous bool
	wait              float64
	kickEvery         time.Duration // wait, checked
	nc                struct {
		ip, mask, gw          string
		dhcp, auth, phy, port int
	}
}

// register adds sub's own flags to fs; false when sub is not a command.
func (o *subFlags) register(fs *flag.FlagSet, sub string) bool {
	switch sub {
	case "scan":
		fs.BoolVar(&o.write, "x", false, "write the devices found to bnfos.conf")
	case "kick":
		fs.BoolVar(&o.continuous, "c", false, "kick continuously")
		fs.Float64Var(&o.wait, "w", 2, "`seconds` between kicks with -c")
	case "netconf":
		fs.StringVar(&o.nc.ip, "i", "", "ip `address`")
		fs.StringVar(&o.nc.mask, "n", "255.255.255.0", "`netmask`")
		fs.StringVar(&o.nc.gw, "g", "0.0.0.0", "`gateway`")
		fs.IntVar(&o.nc.dhcp, "d", 1, "dhcp (1 on, 0 off)")
		fs.IntVar(&o.nc.auth, "a", 0, "http auth (1 on, 0 off)")
		fs.IntVar(&o.nc.phy, "e", 0, "ethernet (0 auto, 1 10 Mbit, 2 100 Mbit)")
		fs.IntVar(&o.nc.port, "p", 80, "http `port`")
	case "get", "set", "show", "master", "slave", "ping", "flash", "reset":
	default:
		return false
	}
	return true
}

// check rejects the values the client would silently replace or cannot represent.
func (o *subFlags) check(f *ctlFlags) error {
	if _, err := seconds("-t", f.timeout, minTimeout, maxTimeout); err != nil {
		return err
	}
	if o.continuous {
		d, err := seconds("-w", o.wait, minKickWait, maxKickWait)
		if err != nil {
			return err
		}
		o.kickEvery = d
	}
	return nil
}

func runBerofos(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprintf(stderr, berofosUsage, keyNames())
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("berofos "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f ctlFlags
	f.register(fs)
	var o subFlags
	if !o.register(fs, sub) {
		fmt.Fprintf(stderr, "redundantctl berofos: unknown command %q\n", sub)
		fmt.Fprintf(stderr, berofosUsage, keyNames())
		return 2
	}
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if err := o.check(&f); err != nil {
		fmt.Fprintf(stderr, "redundantctl berofos %s: %v\n", sub, err)
		return 2
	}
	if sub != "get" && sub != "set" && sub != "flash" && len(positional) > 0 {
		fmt.Fprintf(stderr, "redundantctl berofos %s: unexpected arguments %q\n", sub, positional)
		return 2
	}
	c := &cli{stdout: stdout, stderr: stderr, json: f.json}
	return c.dispatch(ctx, sub, &f, &o, positional)
}

func (c *cli) dispatch(ctx context.Context, sub string, f *ctlFlags, o *subFlags, positional []string) int {
	switch sub {
	case "scan":
		return c.scan(ctx, f, o.write)
	case "get":
		return c.get(ctx, f, positional)
	case "set":
		return c.set(ctx, f, positional)
	case "show":
		return c.show(ctx, f)
	case "kick":
		return c.kick(ctx, f, o.continuous, o.kickEvery)
	case "ping", "reset":
		return c.gbl4(ctx, f, sub)
	case "flash":
		if len(positional) != 1 {
			return c.fail(errors.New("flash: give exactly one firmware file"))
		}
		return c.flash(ctx, f, positional[0])
	case "netconf":
		n, err := netconfFrom(o.nc.ip, o.nc.mask, o.nc.gw, o.nc.dhcp, o.nc.auth, o.nc.phy, o.nc.port)
		if err != nil {
			return c.fail(err)
		}
		return c.netconf(ctx, f, n)
	case "master":
		return c.mode(ctx, f, 1)
	case "slave":
		return c.mode(ctx, f, 0)
	}
	return 2
}

// parseInterleaved parses flags before, between and after positional arguments, so that
// "get mode -f fos2" works as "get -f fos2 mode" does.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

type scanJSON struct {
	Name     string `json:"name"`
	MAC      string `json:"mac"`
	IP       string `json:"ip"`
	Netmask  string `json:"netmask"`
	Gateway  string `json:"gateway"`
	HTTPPort int    `json:"http_port"`
	Firmware string `json:"firmware"`
	FlashMod bool   `json:"flash_mode"`
	DHCP     bool   `json:"dhcp"`
	HTTPAuth bool   `json:"http_auth"`
}

func (c *cli) scan(ctx context.Context, f *ctlFlags, write bool) int {
	cl := f.client()
	defer cl.Close()
	timeout := f.timeoutDuration()
	replies, err := cl.Scan(ctx, f.host, f.udpPort, timeout)
	if err != nil {
		return c.fail(err)
	}
	// Keep the logins of devices already in bnfos.conf (matched by MAC).
	var old []berofos.Device
	if write {
		if devs, err := berofos.LoadConf(f.conf); err == nil {
			old = devs
		} else if !errors.Is(err, os.ErrNotExist) {
			return c.fail(fmt.Errorf("%v (not overwritten)", err))
		}
	}
	var out []scanJSON
	var devs []berofos.Device
	for i, r := range replies {
		name := fmt.Sprintf("fos%d", i+1)
		host := r.IP.String()
		if r.HTTPPort != 80 && r.HTTPPort != 0 {
			host = net.JoinHostPort(host, strconv.Itoa(int(r.HTTPPort)))
		}
		d := berofos.Device{Name: name, Host: host, MAC: r.MAC}
		for _, o := range old {
			if o.MAC.String() == r.MAC.String() {
				d.Login = o.Login
			}
		}
		devs = append(devs, d)
		out = append(out, scanJSON{Name: name, MAC: strings.ToUpper(r.MAC.String()), IP: r.IP.String(),
			Netmask: r.Netmask.String(), Gateway: r.Gateway.String(), HTTPPort: int(r.HTTPPort), Firmware: r.Firmware(),
			FlashMod: r.DevMode != berofos.DevModeOperational, DHCP: r.Options&berofos.OptionDHCP != 0,
			HTTPAuth: r.Options&berofos.OptionHTTPAuth != 0})
	}
	if write {
		if len(devs) == 0 {
			return c.fail(errors.New("no device answered; bnfos.conf not written"))
		}
		if err := berofos.WriteConf(f.conf, devs); err != nil {
			return c.fail(err)
		}
	}
	// A broadcast scan that finds nothing is an answer ("there is none here"); a scan of one
	// named host that stays silent is a failure, as ping to a silent device is.
	code := 0
	if len(out) == 0 && f.host != "" {
		fmt.Fprintf(c.stderr, "redundantctl berofos: %s: no berofos answered within %s\n", f.host, timeout)
		code = 1
	}
	if c.json {
		if out == nil {
			out = []scanJSON{}
		}
		c.emitJSON(out)
		return code
	}
	if len(out) == 0 {
		if f.host == "" {
			fmt.Fprintln(c.stdout, "no berofos answered")
		}
		return code
	}
	c.printScan(out)
	if write {
		fmt.Fprintf(c.stdout, "wrote %s (%d devices)\n", f.conf, len(devs))
	}
	return 0
}

// printScan prints the devices found as a table.
func (c *cli) printScan(out []scanJSON) {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMAC\tADDRESS\tGATEWAY\tPORT\tFIRMWARE\tMODE\tOPTIONS")
	for _, s := range out {
		mode := "operational"
		if s.FlashMod {
			mode = "flash"
		}
		var opts []string
		if s.DHCP {
			opts = append(opts, "dhcp")
		}
		if s.HTTPAuth {
			opts = append(opts, "password")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, s.MAC, s.IP, s.Netmask, s.Gateway, s.HTTPPort,
			s.Firmware, mode, strings.Join(opts, ","))
	}
	tw.Flush()
}

func (c *cli) get(ctx context.Context, f *ctlFlags, keys []string) int {
	if len(keys) == 0 {
		return c.fail(errors.New("get: name at least one key"))
	}
	for _, k := range keys {
		if _, err := berofos.LookupKey(k); err != nil {
			return c.fail(err)
		}
	}
	_, cfg, err := f.readConfig(ctx)
	if err != nil {
		return c.fail(err)
	}
	vals := map[string]string{}
	for _, k := range keys {
		v, err := cfg.Get(k)
		if err != nil {
			return c.fail(err)
		}
		vals[k] = v
	}
	if c.json {
		c.emitJSON(vals)
		return 0
	}
	for _, k := range keys {
		if len(keys) == 1 {
			fmt.Fprintln(c.stdout, vals[k])
		} else {
			fmt.Fprintf(c.stdout, "%s=%s\n", k, vals[k])
		}
	}
	return 0
}

func (c *cli) set(ctx context.Context, f *ctlFlags, pairs []string) int {
	if len(pairs) == 0 {
		return c.fail(errors.New("set: give KEY=VALUE"))
	}
	type kv struct{ k, v string }
	var sets []kv
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return c.fail(fmt.Errorf("set: %q: want KEY=VALUE", p))
		}
		key, err := berofos.LookupKey(k)
		if err != nil {
			return c.fail(err)
		}
		if _, err := key.Normalize(v); err != nil {
			return c.fail(err)
		}
		sets = append(sets, kv{k, v})
	}
	d, err := f.device()
	if err != nil {
		return c.fail(err)
	}
	cl := f.client()
	defer cl.Close()
	type result struct {
		Key       string `json:"key"`
		Value     string `json:"value"`
		Confirmed bool   `json:"confirmed"`
		Error     string `json:"error,omitempty"`
	}
	var res []result
	code := 0
	for _, s := range sets {
		key, _ := berofos.LookupKey(s.k)
		v, _ := key.Normalize(s.v)
		_, err := cl.Set(ctx, d, s.k, s.v)
		r := result{Key: s.k, Value: v, Confirmed: err == nil && key.Verifiable()}
		if err != nil {
			r.Error, code = err.Error(), 1
		}
		res = append(res, r)
		if !c.json {
			switch {
			case err != nil:
				fmt.Fprintf(c.stderr, "redundantctl berofos: %v\n", err)
			case key.Verifiable():
				fmt.Fprintf(c.stdout, "%s: %s=%s (confirmed)\n", d, s.k, v)
			default:
				fmt.Fprintf(c.stdout, "%s: %s sent (the device does not report it back)\n", d, s.k)
			}
		}
		if err != nil {
			break
		}
	}
	if c.json {
		c.emitJSON(res)
	}
	return code
}

func (c *cli) show(ctx context.Context, f *ctlFlags) int {
	d, cfg, err := f.readConfig(ctx)
	if err != nil {
		return c.fail(err)
	}
	vals := cfg.Values()
	if c.json {
		m := map[string]string{}
		for _, e := range vals {
			m[e.Key] = e.Value
		}
		c.emitJSON(m)
		return 0
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "# %s (%s)\n", d, d.Host)
	for _, e := range vals {
		k, _ := berofos.LookupKey(e.Key)
		fmt.Fprintf(tw, "%s\t%s\t# %s\n", e.Key, e.Value, k.Help)
	}
	tw.Flush()
	return 0
}

func (c *cli) kick(ctx context.Context, f *ctlFlags, continuous bool, every time.Duration) int {
	d, err := f.device()
	if err != nil {
		return c.fail(err)
	}
	if len(d.MAC) != 6 {
		return c.fail(fmt.Errorf("%s: kick needs the device's MAC (-m or mac = in %s)", d, f.conf))
	}
	cl := f.client()
	defer cl.Close()
	if !continuous {
		if err := cl.Kick(ctx, d); err != nil {
			return c.fail(err)
		}
		if c.json {
			c.emitJSON(map[string]any{"device": d.String(), "kicked": true})
		} else {
			fmt.Fprintf(c.stdout, "%s: watchdog kicked\n", d)
		}
		return 0
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failed := false
	for {
		err := cl.Kick(ctx, d)
		switch {
		case ctx.Err() != nil:
			return 0
		case err != nil:
			fmt.Fprintf(c.stderr, "redundantctl berofos: %v\n", err)
			failed = true
		case failed:
			fmt.Fprintf(c.stdout, "%s: kicks answered again\n", d)
			failed = false
		}
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
		}
	}
}

// mode is master/slave: every device in bnfos.conf (or the one -h names), confirmed.
func (c *cli) mode(ctx context.Context, f *ctlFlags, mode int) int {
	var devs []berofos.Device
	if f.host != "" {
		d, err := f.device()
		if err != nil {
			return c.fail(err)
		}
		devs = []berofos.Device{d}
	} else {
		var err error
		if devs, err = berofos.LoadConf(f.conf); err != nil {
			return c.fail(err)
		}
		if len(devs) == 0 {
			return c.fail(fmt.Errorf("%s lists no device", f.conf))
		}
		for i := range devs {
			devs[i].UDPPort = f.udpPort
		}
	}
	cl := f.client()
	defer cl.Close()
	results := cl.ApplyMode(ctx, devs, mode)
	type result struct {
		Device  string `json:"device"`
		Mode    int    `json:"mode"`
		Changed bool   `json:"changed"`
		OK      bool   `json:"ok"`
		Error   string `json:"error,omitempty"`
	}
	var out []result
	code := 0
	for _, r := range results {
		res := result{Device: r.Device, Mode: r.Mode, Changed: r.Changed, OK: r.Err == nil}
		if r.Err != nil {
			res.Error, code = r.Err.Error(), 1
		}
		out = append(out, res)
	}
	if c.json {
		c.emitJSON(out)
		return code
	}
	names := map[int]string{0: "A-D", 1: "A-B"}
	for _, r := range out {
		switch {
		case !r.OK:
			fmt.Fprintf(c.stderr, "%s: NOT switched to mode %d (%s): %s\n", r.Device, mode, names[mode], r.Error)
		case r.Changed:
			fmt.Fprintf(c.stdout, "%s: switched to mode %d (%s), confirmed\n", r.Device, mode, names[mode])
		default:
			fmt.Fprintf(c.stdout, "%s: already in mode %d (%s)\n", r.Device, mode, names[mode])
		}
	}
	return code
}

// gbl4Device resolves the device for a GBL4 command, which needs its MAC.
func (c *cli) gbl4Device(f *ctlFlags, what string) (berofos.Device, error) {
	d, err := f.device()
	if err != nil {
		return d, err
	}
	if len(d.MAC) != 6 {
		return d, fmt.Errorf("%s: %s needs the device's MAC (-m or mac = in %s)", d, what, f.conf)
	}
	return d, nil
}

func (c *cli) done(d berofos.Device, key, text string) int {
	if c.json {
		c.emitJSON(map[string]any{"device": d.String(), key: true})
	} else {
		fmt.Fprintf(c.stdout, "%s: %s\n", d, text)
	}
	return 0
}

func (c *cli) gbl4(ctx context.Context, f *ctlFlags, sub string) int {
	d, err := c.gbl4Device(f, sub)
	if err != nil {
		return c.fail(err)
	}
	cl := f.client()
	defer cl.Close()
	if sub == "ping" {
		if err := cl.Ping(ctx, d); err != nil {
			return c.fail(err)
		}
		return c.done(d, "answered", "answered")
	}
	if err := cl.Reset(ctx, d); err != nil {
		return c.fail(err)
	}
	return c.done(d, "reset", "reset, now in operational mode")
}

func netconfFrom(ip, mask, gw string, dhcp, auth, phy, port int) (berofos.Netconf, error) {
	var n berofos.Netconf
	for _, a := range []struct {
		flag, v string
		dst     *netip.Addr
	}{{"-i", ip, &n.IP}, {"-n", mask, &n.Netmask}, {"-g", gw, &n.Gateway}} {
		addr, err := netip.ParseAddr(a.v)
		if err != nil || !addr.Is4() {
			return n, fmt.Errorf("netconf %s %q: want an IPv4 address", a.flag, a.v)
		}
		*a.dst = addr
	}
	switch phy {
	case 0:
		n.PhyConf = berofos.PhyConfAuto
	case 1:
		n.PhyConf = berofos.PhyConf10M
	case 2:
		n.PhyConf = berofos.PhyConf100M
	default:
		return n, fmt.Errorf("netconf -e %d: want 0 (auto), 1 (10 Mbit) or 2 (100 Mbit)", phy)
	}
	if dhcp != 0 && dhcp != 1 || auth != 0 && auth != 1 {
		return n, errors.New("netconf: -d and -a take 0 or 1")
	}
	if dhcp == 1 {
		n.Options |= berofos.OptionDHCP
	}
	if auth == 1 {
		n.Options |= berofos.OptionHTTPAuth
	}
	if port < 1 || port > 65535 {
		return n, fmt.Errorf("netconf -p %d: want 1..65535", port)
	}
	n.HTTPPort = uint16(port)
	return n, nil
}

func (c *cli) netconf(ctx context.Context, f *ctlFlags, n berofos.Netconf) int {
	d, err := c.gbl4Device(f, "netconf")
	if err != nil {
		return c.fail(err)
	}
	cl := f.client()
	defer cl.Close()
	if err := cl.Netconf(ctx, d, n); err != nil {
		return c.fail(err)
	}
	return c.done(d, "netconf", "network configuration written (applied at the next boot)")
}

func (c *cli) flash(ctx context.Context, f *ctlFlags, file string) int {
	d, err := c.gbl4Device(f, "flash")
	if err != nil {
		return c.fail(err)
	}
	image, err := os.ReadFile(file)
	if err != nil {
		return c.fail(err)
	}
	cl := f.client()
	defer cl.Close()
	err = cl.Flash(ctx, d, image, func(done, total int) {
		if !c.json {
			fmt.Fprintf(c.stderr, "\rpage %d of %d flashed", done, total)
		}
	})
	if !c.json {
		fmt.Fprintln(c.stderr)
	}
	if err != nil {
		return c.fail(err)
	}
	return c.done(d, "flashed", "firmware written; reset the device to run it")
}
