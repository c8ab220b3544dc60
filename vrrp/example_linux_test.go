package vrrp_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/redundantd/redundantd/vrrp"
)

// A daemon runs one Router per virtual router. OnEvent only hands the transition on: the
// appliance acts on it (berofos, services, sync) on its own goroutine, so that nothing it does
// can delay an advert.
func ExampleDial() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	events := make(chan vrrp.Event, 64)
	r, err := vrrp.Dial(vrrp.Config{
		Interface:  "eth0",
		VRID:       51,
		Priority:   150,
		Preempt:    true,
		Primary:    netip.MustParseAddr("192.0.2.1"),
		VirtualIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")},
		StateDir:   "/var/lib/redundantd",
		Logger:     log,
		OnEvent: func(e vrrp.Event) {
			select {
			case events <- e:
			default:
				log.Error("event queue full; dropping", "from", e.From, "to", e.To)
			}
		},
	})
	if err != nil {
		log.Error("vrrp", "err", err)
		return
	}
	go func() {
		for e := range events {
			log.Info("vrrp transition", "from", e.From, "to", e.To, "reason", e.Reason)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// On SIGTERM a Master resigns with a priority-0 advert and releases the addresses.
	if err := r.Run(ctx); err != nil {
		log.Error("vrrp", "err", err)
	}
}
