package berofos

import (
	"context"
	"sync"
)

// ModeResult is the outcome of ApplyMode for one device.
type ModeResult struct {
	Device  string
	Mode    int  // the mode read back; -1 when unknown
	Changed bool // a set was sent (and confirmed); false when the mode was already in place
	Err     error
}

// ApplyMode puts every device in mode (0 A-D, 1 A-B) once, in parallel: each device is read
// first, set only when needed, and confirmed by read-back. It is the one-shot counterpart of
// the Controller ("xivo-berofos master/slave", but checked). Results are in devs' order.
func (c *Client) ApplyMode(ctx context.Context, devs []Device, mode int) []ModeResult {
	out := make([]ModeResult, len(devs))
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Go(func() {
			r := ModeResult{Device: d.String(), Mode: -1}
			defer func() { out[i] = r }()
			cfg, err := c.ReadConfig(ctx, d)
			if err != nil {
				r.Err = err
				return
			}
			if m, err := cfg.Mode(); err != nil {
				r.Err = err
				return
			} else if m == mode {
				r.Mode = m
				return
			}
			cfg, err = c.SetMode(ctx, d, mode)
			if cfg != nil {
				if m, merr := cfg.Mode(); merr == nil {
					r.Mode = m
				}
			}
			r.Changed, r.Err = err == nil, err
		})
	}
	wg.Wait()
	return out
}
