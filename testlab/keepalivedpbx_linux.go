package testlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	stdsync "sync"
	"time"
)

// KeepalivedPBX is one node of the setup redundantd is compared with in `redundantlab bench
// service`: keepalived moves the virtual IP, its notify_master / notify_backup / notify_fault
// / notify_stop scripts run the same `kamailioctl start|stop` as redundantd's [[service]], and
// a cron-style job pushes the node's tree (the registrations' snapshot) with rsync to an
// rsync daemon on the peer every Every while the node holds the virtual IP.
type KeepalivedPBX struct {
	Node   *Node
	Peer   *Node
	Router *Router
	Files  KamailioFiles
	Every  time.Duration // the cron interval
	Rsyncd *Process

	mu       stdsync.Mutex
	cronStop context.CancelFunc
	cronDone chan struct{}
	pushes   int
}

// KeepalivedNotify is the vrrp_instance lines that run script's start and stop on the
// state changes (keepalived runs them as root when its keepalived_script user is absent).
func KeepalivedNotify(f KamailioFiles) string {
	return fmt.Sprintf("  notify_master \"%[1]s start\"\n  notify_backup \"%[1]s stop\"\n  notify_fault \"%[1]s stop\"\n  notify_stop \"%[1]s stop\"", f.Script)
}

// StartKeepalivedPBXPair starts, on nodes 1 and 2, an rsync daemon serving the node's tree,
// keepalived with cfg[i] plus the notify lines for files[i], and the cron-style rsync every
// every; node 1 first, so that it is Master. It returns when node 1 is Master and node 2
// Backup.
func StartKeepalivedPBXPair(ctx context.Context, l *Lab, cfg [2]VRRPConfig, files [2]KamailioFiles, every time.Duration) ([2]*KeepalivedPBX, error) {
	var ks [2]*KeepalivedPBX
	for i := range 2 {
		ks[i] = &KeepalivedPBX{Node: l.Node(i + 1), Peer: l.Node(2 - i), Files: files[i], Every: every}
		c := cfg[i]
		if c.Extra != "" {
			c.Extra += "\n"
		}
		c.Extra += KeepalivedNotify(files[i])
		r := &Router{Impl: Keepalived, Node: ks[i].Node, Config: c, Dir: filepath.Join(l.Dir, ks[i].Node.Name+"-"+string(Keepalived))}
		ks[i].Router = r
	}
	for i, k := range ks {
		if err := k.PowerOn(ctx); err != nil {
			return ks, err
		}
		want := "master"
		if i == 1 {
			want = "backup"
		}
		if err := k.Router.WaitState(ctx, want); err != nil {
			return ks, err
		}
	}
	return ks, nil
}

// PowerOn (re)starts the node after a PowerLoss (or for the first time): link up, the rsync
// daemon, keepalived (as BACKUP, nopreempt) and the cron job.
func (k *KeepalivedPBX) PowerOn(ctx context.Context) error {
	if err := k.Node.RestoreLink(); err != nil {
		return err
	}
	dir := filepath.Join(k.Node.lab.Dir, k.Node.Name+"-rsyncd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	conf := filepath.Join(dir, "rsyncd.conf")
	text := fmt.Sprintf("use chroot = no\npid file = %s\nlog file = %s\n\n[pbx]\n  path = %s\n  read only = no\n  uid = root\n  gid = root\n",
		filepath.Join(dir, "rsyncd.pid"), filepath.Join(dir, "rsyncd.log"), k.Files.Tree)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	os.Remove(filepath.Join(dir, "rsyncd.pid")) // left by a killed daemon, it would stop the next
	p, err := k.Node.StartProcess("rsyncd@"+k.Node.Name, dir,
		exec.Command("rsync", "--daemon", "--no-detach", "--config="+conf, "--address="+k.Node.Addr.String(), "--port=873"))
	if err != nil {
		return err
	}
	k.Rsyncd = p
	if err := k.Router.Start(ctx); err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(k.Node.lab.ctx)
	done := make(chan struct{})
	k.mu.Lock()
	k.cronStop, k.cronDone = cancel, done
	k.mu.Unlock()
	go k.cron(cctx, done)
	return nil
}

// cron runs the push every k.Every, as a crontab line on each node would: it pushes only
// while the node holds a virtual IP (is Master).
func (k *KeepalivedPBX) cron(ctx context.Context, done chan struct{}) {
	defer close(done)
	vips := k.Node.withDefaults(k.Router.Config).VIPs
	t := time.NewTicker(k.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ok, err := k.Node.HasAddr(vips[0].Addr()); err != nil || !ok {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, k.Every)
		_, err := k.Node.Exec(pctx, "rsync", "-a", "--delete", "--exclude=/tmp/", "--timeout=5",
			k.Files.Tree+"/", fmt.Sprintf("rsync://%s/pbx/", k.Peer.Addr))
		cancel()
		if err == nil {
			k.mu.Lock()
			k.pushes++
			k.mu.Unlock()
		}
	}
}

// Pushes is the number of rsync runs that succeeded from this node.
func (k *KeepalivedPBX) Pushes() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pushes
}

func (k *KeepalivedPBX) stopCron() {
	k.mu.Lock()
	stop, done := k.cronStop, k.cronDone
	k.cronStop = nil
	k.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// PowerLoss is the node losing power: the cron stops, the link is cut, and Kamailio,
// keepalived and the rsync daemon are killed with SIGKILL.
func (k *KeepalivedPBX) PowerLoss(ctx context.Context) error {
	k.stopCron()
	return k.Node.PowerLoss(ctx, k.Router.Proc(), k.Rsyncd)
}

// Close stops the node's cron, keepalived and rsync daemon and kills its Kamailio.
func (k *KeepalivedPBX) Close(ctx context.Context) {
	k.stopCron()
	for _, p := range []*Process{k.Router.Proc(), k.Rsyncd} {
		if p != nil {
			if exited, _ := p.Exited(); !exited {
				p.Kill(ctx)
			}
		}
	}
	k.Node.KillKamailio()
}
