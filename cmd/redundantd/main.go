// Command redundantd is the redundancy daemon of a PBX node: it runs the VRRP engine that
// elects the Master, moves the virtual IPs, and serves the status API.
//
//	redundantd -config /etc/redundantd/redundantd.toml
//
// Exit status: 0 after a clean stop (SIGTERM or SIGINT), 1 on a runtime failure, 2 when the
// configuration is unusable.
//
// GOMAXPROCS is taken from the CPUs and the cgroup's CPU limit at start and not re-read every
// second (updatemaxprocs=0): an idle daemon otherwise reads the cgroup files and its CPU
// affinity once a second for a value it does not need to follow; a restart picks up a new
// limit, and GOMAXPROCS in the environment still overrides it (docs/benchmarks.md,
// resources).
//
//go:debug updatemaxprocs=0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/redundantd/redundantd/appliance"
	"github.com/redundantd/redundantd/vrrp"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("redundantd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/redundantd/redundantd.toml", "configuration file (TOML)")
	check := fs.Bool("check", false, "validate the configuration and the files it names (berofos.conf, the sync certificate) as start-up does, and exit: 0 valid, 2 not")
	fingerprint := fs.Bool("fingerprint", false, "print this node's sync certificate fingerprint (creating the certificate) and exit")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log as JSON lines instead of text")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "redundantd: -log-level: %v\n", err)
		return 2
	}
	log := slog.New(newLogHandler(stderr, *logJSON, level, underJournal(os.Getenv("JOURNAL_STREAM"), stderr)))

	cfg, err := appliance.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "redundantd: %v\n", err)
		return 2
	}
	if *fingerprint {
		fp, err := appliance.Fingerprint(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "redundantd: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, fp)
		return 0
	}
	if *check {
		fmt.Fprintf(stdout, "%s: configuration is valid\n", *configPath)
		return 0
	}

	sd, watchdogEvery, err := notifierFromEnv()
	if err != nil {
		log.Error("start-up failed", "err", err)
		return 1
	}
	// The API listener is bound before READY=1 is sent: a unit ordered After=redundantd (or
	// redundantctl right after `systemctl start`) finds it accepting.
	apiLn, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		log.Error("start-up failed", "err", fmt.Errorf("api: listen on %s: %w", cfg.API.Listen, err))
		return 1
	}
	app, err := appliance.New(cfg, appliance.Options{
		Logger:      log.With("node", cfg.Node.ID),
		APIListener: apiLn,
		DialVRRP: func(c vrrp.Config) (appliance.Router, error) {
			r, err := vrrp.Dial(c)
			if err != nil {
				return nil, err
			}
			return r, nil
		},
	})
	if err != nil {
		apiLn.Close()
		log.Error("start-up failed", "err", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go handleSignals(ctx, *configPath, app, log, sd)
	go trimMemory(ctx, log) // memtrim.go
	sdErr := func(err error) { log.Warn("service manager notification failed", "err", err) }
	go sd.watchdog(ctx, watchdogEvery, func() { app.Status() }, sdErr)
	if err := sd.notify("READY=1\nSTATUS=node " + cfg.Node.ID + " running"); err != nil {
		sdErr(err)
	}
	if err := app.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}

// handleSignals keeps the signals that would otherwise kill the daemon silently (SIGHUP's
// default is to terminate: `systemctl reload`, logrotate and a closed terminal send it) from
// doing so. SIGHUP reloads the configuration; SIGUSR1 and SIGUSR2 log the node's status.
// Under systemd a reload is framed by RELOADING=1 and READY=1.
func handleSignals(ctx context.Context, configPath string, app *appliance.Appliance, log *slog.Logger, sd *notifier) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := sd.notify(reloading(monotonicNow())); err != nil {
					log.Warn("service manager notification failed", "err", err)
				}
				reload(configPath, app, log)
				if err := sd.notify("READY=1"); err != nil {
					log.Warn("service manager notification failed", "err", err)
				}
				continue
			}
			st := app.Status()
			log.Info("status", "signal", sig.String(), "state", st.State, "priority", st.Priority,
				"master", st.MasterIP, "holding", st.Holding, "backup_mode", st.BackupMode, "transitions", st.Transitions)
		}
	}
}

// reload reads the file again with every check of -check: a bad file changes nothing.
func reload(configPath string, app *appliance.Appliance, log *slog.Logger) {
	cfg, err := appliance.LoadConfig(configPath)
	if err != nil {
		log.Error("reload refused; the running configuration stays", "err", err)
		app.ReloadFailed(err)
		return
	}
	res, err := app.Reload(cfg)
	if err != nil {
		log.Error("reload: some settings were not applied", "err", err)
	}
	log.Info("configuration reloaded", "applied", res.Applied, "needs_restart", res.Restart)
}
