package appliance

import (
	"errors"
	"fmt"
	"time"
)

// SwapRequest is the body of POST /api/v1/swap.
type SwapRequest struct {
	// Force hands over even when the final sync fails or the peer link is down (then the
	// priority-0 advert alone hands over, which only an Active Backup acts on).
	Force bool `json:"force,omitempty"`
	// Drain waits up to this long ("5m") for the services' drain_check to report no call in
	// progress before handing over.
	Drain string `json:"drain,omitempty"`
}

// SwapStep is one step of a swap's timeline, in milliseconds from the command.
type SwapStep struct {
	Step   string  `json:"step"`
	AtMS   float64 `json:"at_ms"`
	TookMS float64 `json:"took_ms"`
	Detail string  `json:"detail,omitempty"`
}

// SwapResult answers POST /api/v1/swap (and is kept as the status's last swap).
type SwapResult struct {
	State     string     `json:"state"` // "pending", "done", "failed", "cancelled", "refused"
	Started   time.Time  `json:"started"`
	Force     bool       `json:"force,omitempty"`
	NewMaster string     `json:"new_master,omitempty"`
	Timeline  []SwapStep `json:"timeline"`
	Error     string     `json:"error,omitempty"`
	TotalMS   float64    `json:"total_ms"`
}

// ErrSwapRefused wraps every reason a swap is not started; the API answers 409.
var ErrSwapRefused = errors.New("swap refused")

// swapInputs is what decides whether a swap may start.
type swapInputs struct {
	Role          string // this node's VRRP state name
	Pending       bool   // a swap is already running here
	PeerConnected bool
	PeerRole      string     // as the peer last reported it
	PeerMode      BackupMode // the group's Backup mode as last known
	Force         bool
}

// swapRefusal returns nil when a swap may start, or why not (wrapping ErrSwapRefused). Only
// the Master swaps; a Backup that is not there, or is not Backup, cannot take over. Force
// overrides an unreachable peer link only when the Backup was last Active: the priority-0
// advert then makes it Master after Skew_Time, where a Passive one would leave the group
// with no Master at all.
func swapRefusal(in swapInputs) error {
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrSwapRefused, fmt.Sprintf(format, a...))
	}
	switch {
	case in.Role != "master":
		return refuse("this node is %s, not Master; ask the Master", in.Role)
	case in.Pending:
		return refuse("a swap is already in progress")
	case !in.PeerConnected && !in.Force:
		return refuse("no Backup present: the peer link is down (force hands over by a priority-0 advert if the Backup is Active)")
	case !in.PeerConnected && in.PeerMode != ModeActive:
		return refuse("no Backup present and the Backup was last %s: nobody would take over", orUnknown(string(in.PeerMode)))
	case in.PeerConnected && in.PeerRole != "backup":
		return refuse("the peer is %s, not Backup", orUnknown(in.PeerRole))
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// timeline records a swap's steps relative to its start.
type timeline struct {
	start time.Time
	now   func() time.Time
	steps []SwapStep
}

// step runs f as the named step and records when it began and how long it took.
func (t *timeline) step(name string, f func() (string, error)) error {
	began := t.now()
	detail, err := f()
	if err != nil && detail == "" {
		detail = err.Error()
	}
	t.steps = append(t.steps, SwapStep{Step: name, AtMS: ms(began.Sub(t.start)), TookMS: ms(t.now().Sub(began)), Detail: detail})
	return err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
