package testlab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redundantd/redundantd/appliance"
	pbxsync "github.com/redundantd/redundantd/sync"
	"github.com/redundantd/redundantd/testlab/poll"
)

// PBX is what a node of an appliance pair runs besides VRRP: a replicated tree (seen by the
// daemon at the same path on every node) and a stand-in PBX service whose start and stop
// leave a marker, so a test can see at any moment which node runs the PBX.
type PBX struct {
	Router *Router
	Tree   string // the node's own copy of the replicated tree (on the host)
	Marker string // exists while the node's PBX service runs
	Log    string // one line per start and stop
	// Fingerprint is the node's certificate fingerprint (what `redundantd -fingerprint`
	// prints), set by NewPBXPair.
	Fingerprint string
	// PeerAddress, when set before Start, is the peer link's address of the other node
	// ([peer] address), for a link on another path than the adverts (Crosslink).
	PeerAddress string
	// CheckInterval, when set before Start, is the PBX service's check_interval (and so its
	// check's timeout); zero is 500ms. A test of something else than the service's health sets
	// it long, so that a check starved on a loaded machine never hands the role over.
	CheckInterval time.Duration
}

// PBXTree is the path at which each daemon sees its own tree (Bind).
func (l *Lab) PBXTree() string { return filepath.Join(l.Dir, "pbx") }

// ApplianceConfig renders the [sync], [peer] and [[service]] sections of a node of an
// appliance pair; peerFingerprint is the other node's certificate.
func (p *PBX) applianceTOML(l *Lab, peerFingerprint, extra string) string {
	check := 500 * time.Millisecond
	if p.CheckInterval > 0 {
		check = p.CheckInterval
	}
	peerAddr := ""
	if p.PeerAddress != "" {
		peerAddr = fmt.Sprintf("address = %q\n", p.PeerAddress)
	}
	return fmt.Sprintf(`[sync]
enabled = true
paths = [%q]
peer_fingerprint = %q
interval = "1h"
watch = true

[peer]
interval = "200ms"
%s
[[service]]
name = "pbx"
start = ["sh", "-c", "touch %s && echo start >> %s"]
stop = ["sh", "-c", "rm -f %s && echo stop >> %s"]
check = ["test", "-e", %q]
check_interval = %q
timeout = "5s"
%s`, l.PBXTree(), peerFingerprint, peerAddr, p.Marker, p.Log, p.Marker, p.Log, p.Marker, check.String(), extra)
}

// StartPBXPair starts redundantd on nodes 1 and 2 as an appliance pair (replication, the
// peer link, a PBX service), node 1 first so that it is Master, each with cfg (and extra
// TOML per node). It waits until node 1 is Master, node 2 Backup and the peer link is up.
func StartPBXPair(ctx context.Context, l *Lab, cfg [2]VRRPConfig, extra [2]string) ([2]*PBX, error) {
	ps, err := NewPBXPair(l)
	if err != nil {
		return ps, err
	}
	return ps, StartPBXs(ctx, l, ps, cfg, extra)
}

// StartPBXs is StartPBXPair for a pair made by NewPBXPair (and adjusted: a PeerAddress, say).
func StartPBXs(ctx context.Context, l *Lab, ps [2]*PBX, cfg [2]VRRPConfig, extra [2]string) error {
	for i := range 2 {
		want := "master"
		if i == 1 {
			want = "backup"
		}
		if err := ps[i].Start(ctx, l.Node(i+1), cfg[i], ps[1-i].Fingerprint, extra[i]); err != nil {
			return err
		}
		if err := ps[i].Router.WaitState(ctx, want); err != nil {
			return err
		}
	}
	return poll.Context(ctx, 50*time.Millisecond, func() bool {
		st, err := ps[0].Status(ctx)
		return err == nil && st.Peer != nil && st.Peer.Connected && st.Peer.Role == "backup"
	})
}

// NewPBXPair prepares nodes 1 and 2 of an appliance pair without starting them: each node's
// directory with its empty tree, and its certificate (made as the operator's `redundantd
// -fingerprint` makes it), so that a test can start the nodes one by one (Start), as an
// operator deploys them.
func NewPBXPair(l *Lab) ([2]*PBX, error) {
	var ps [2]*PBX
	for i := range 2 {
		n := l.Node(i + 1)
		dir := filepath.Join(l.Dir, n.Name+"-"+string(Redundantd))
		ps[i] = &PBX{Tree: filepath.Join(dir, "tree"), Marker: filepath.Join(dir, "pbx.running"), Log: filepath.Join(dir, "pbx.log")}
		if err := os.MkdirAll(ps[i].Tree, 0o755); err != nil {
			return ps, err
		}
		fp, err := pbxsync.LocalFingerprint(filepath.Join(dir, "state", "sync"))
		if err != nil {
			return ps, err
		}
		ps[i].Fingerprint = fp
	}
	return ps, nil
}

// Start starts redundantd for this PBX on node n with cfg, the appliance sections (the peer
// pinned by peerFingerprint) and extra TOML; it does not wait for a role. To restart the
// daemon later use p.Router (Term or Kill, then Start); to change its file, p.Router.Config
// (see Configure).
func (p *PBX) Start(ctx context.Context, n *Node, cfg VRRPConfig, peerFingerprint, extra string) error {
	p.Configure(n.lab, &cfg, peerFingerprint, extra)
	r, err := n.StartRouter(ctx, Redundantd, cfg)
	if err != nil {
		return err
	}
	p.Router = r
	return nil
}

// Configure sets in cfg what makes it this PBX's configuration: the appliance sections with
// the peer pinned by peerFingerprint and extra TOML, and the bind of the tree. It is how a
// test changes a node's file before restarting it (Router.Start writes it).
func (p *PBX) Configure(l *Lab, cfg *VRRPConfig, peerFingerprint, extra string) {
	cfg.Extra = p.applianceTOML(l, peerFingerprint, extra)
	cfg.Binds = []Bind{{Source: p.Tree, Target: l.PBXTree()}}
}

// Running reports whether the node's PBX service runs now.
func (p *PBX) Running() bool {
	_, err := os.Stat(p.Marker)
	return err == nil
}

// Status is the daemon's full status answer.
func (p *PBX) Status(ctx context.Context) (appliance.StatusResponse, error) {
	var st appliance.StatusResponse
	err := p.API(ctx, http.MethodGet, "/api/v1/status", nil, &st)
	return st, err
}

// ApplianceStatus is redundantd's whole status answer inside the node, in the API's own type
// (Status is the part the tests of either implementation read); reading it needs no token.
func (n *Node) ApplianceStatus(ctx context.Context) (appliance.StatusResponse, error) {
	var st appliance.StatusResponse
	return st, n.getStatus(ctx, &st)
}

// API calls the daemon's API inside its node with its token; out receives the JSON answer
// (also of a 409). A status other than 200 is an error naming it.
func (p *PBX) API(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+APIAddr+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok, err := os.ReadFile(filepath.Join(p.Router.Dir, "state", "api.token")); err == nil {
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := p.Router.Node.HTTPClient().Do(req)
	if err != nil {
		return fmt.Errorf("testlab: %s %s on %s: %w", method, path, p.Router.Node.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("testlab: %s %s on %s: %s: %s", method, path, p.Router.Node.Name, resp.Status, b)
	}
	return nil
}

// WriteMessage leaves a voicemail (audio, then its .txt, as Asterisk does) in the node's tree.
func (p *PBX) WriteMessage(box string, n int, audio []byte) error {
	dir := filepath.Join(p.Tree, box, "INBOX")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(dir, fmt.Sprintf("msg%04d", n))
	if err := os.WriteFile(base+".wav", audio, 0o644); err != nil {
		return err
	}
	return os.WriteFile(base+".txt", []byte(fmt.Sprintf("[message]\nmsgnum=%d\n", n)), 0o644)
}

// HasMessage reports whether the node's tree holds message n of box with the given audio.
func (p *PBX) HasMessage(box string, n int, audio []byte) bool {
	b, err := os.ReadFile(filepath.Join(p.Tree, box, "INBOX", fmt.Sprintf("msg%04d.wav", n)))
	return err == nil && bytes.Equal(b, audio)
}
