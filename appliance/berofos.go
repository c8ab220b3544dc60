package appliance

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redundantd/redundantd/berofos"
	"github.com/redundantd/redundantd/vrrp"
)

// berofosPart moves the ISDN lines with the role: the Master asserts "lines to me" on every
// configured device; a Backup asserts nothing and leaves the devices to the Master, so two
// healthy nodes never fight over a relay. In the bypass scenario the watchdog is kicked only
// while this node is Master, so the lines fall back to the old PBX when it is not, or when
// the daemon stops.
type berofosPart struct {
	c *berofos.Controller
}

func newBerofosPart(cfg BerofosConfig, log *slog.Logger, record func(Event) Event) (*berofosPart, error) {
	all, err := berofos.LoadConf(cfg.Conf)
	if err != nil {
		return nil, fmt.Errorf("berofos.conf: %w", err)
	}
	devs := all
	if len(cfg.Devices) > 0 {
		devs = nil
		for _, name := range cfg.Devices {
			d, err := berofos.FindDevice(all, name)
			if err != nil {
				return nil, fmt.Errorf("berofos.devices: %s: %w", cfg.Conf, err)
			}
			devs = append(devs, d)
		}
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("berofos: %s lists no device", cfg.Conf)
	}
	c, err := berofos.NewController(berofos.ControllerConfig{
		Devices:      devs,
		ModeForMe:    cfg.LinesMode,
		Kick:         cfg.Bypass,
		KickInterval: cfg.KickInterval,
		Timeout:      cfg.Timeout,
		PollInterval: cfg.PollInterval,
		Logger:       log,
		OnEvent:      func(e berofos.DeviceEvent) { record(berofosEvent(e)) },
	}, nil)
	if err != nil {
		return nil, err
	}
	return &berofosPart{c: c}, nil
}

// linesInPlace reports whether every device is confirmed in the mode this node wants.
func (p *berofosPart) linesInPlace() bool {
	for _, d := range p.c.Status() {
		if !d.InPlace {
			return false
		}
	}
	return true
}

func (p *berofosPart) Name() string                  { return "berofos" }
func (p *berofosPart) Run(ctx context.Context) error { return p.c.Run(ctx) }
func (p *berofosPart) Status() any                   { return p.c.Status() }

func (p *berofosPart) Follow(role vrrp.State) {
	master := role == vrrp.StateMaster
	p.c.SetHealthy(master)
	if master {
		p.c.SetDesired(berofos.LinesToMe)
	} else {
		p.c.SetDesired(berofos.LinesUnknown)
	}
}

// berofosEvent turns a device event into an event-log entry an operator can act on.
func berofosEvent(e berofos.DeviceEvent) Event {
	prio := PriorityInfo
	switch e.Kind {
	case berofos.EventUnreachable, berofos.EventSetFailed, berofos.EventWatchdogFailure, berofos.EventKickFailed:
		prio = PriorityWarning
	case berofos.EventDrift:
		prio = PriorityNotice
	}
	msg := fmt.Sprintf("%s: %s (want lines %s", e.Device, e.Kind, e.Desired)
	if e.Mode >= 0 {
		msg += fmt.Sprintf(", relay mode %d", e.Mode)
	}
	msg += ")"
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return Event{Time: e.At, Priority: prio, Application: AppBerofos, Name: e.Kind.String(), Description: msg}
}
