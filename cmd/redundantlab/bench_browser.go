//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/redundantd/redundantd/testlab"
	"github.com/redundantd/redundantd/testlab/poll"
)

// consoleUser is the operator the resource benchmark logs in as.
const consoleUser = "admin"

// writeConsoleUsers writes a users file (user:bcrypt-hash, mode 0600 as the daemon requires)
// with consoleUser and a fresh random password in dir, and returns its path and the password.
func writeConsoleUsers(dir string) (path, password string, err error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	password = hex.EncodeToString(b)
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "console.users")
	if err := os.WriteFile(path, []byte(consoleUser+":"+string(h)+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return path, password, nil
}

// consoleTOML is the [console] section of a node whose users file is users.
func consoleTOML(users string) string {
	return fmt.Sprintf("\n[console]\nenabled = true\nusers_file = %q\n", users)
}

// benchBrowser is a headless Chromium inside a node's namespace, driven over the DevTools
// protocol (chromedp, on a pipe), holding the console's Status page open.
type benchBrowser struct {
	ctx    context.Context
	cancel func()
}

// startBrowser starts Chromium in node n's namespace (through `ip netns exec`, so its
// sockets are the node's and 127.0.0.1:7400 is the daemon there; its processes are not in
// the daemon's process group, so they are not counted in its figures), logs in as
// consoleUser and opens the live Status page, and waits until the page's server-sent-event
// stream is connected.
func startBrowser(ctx context.Context, n *testlab.Node, password string) (*benchBrowser, error) {
	bin := ""
	for _, b := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(b); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		return nil, errors.New("-console: chromium is not installed (apt-get install chromium)")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("-console: ip (iproute2) runs the browser in the node's namespace: %w", err)
	}
	dir := filepath.Join(n.Lab().Dir, "browser")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.UserDataDir(dir), chromedp.WindowSize(1100, 900),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.Args = append([]string{"ip", "netns", "exec", n.NSName, bin}, cmd.Args[1:]...)
			cmd.Path = ipBin
		}))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(ctx), opts...)
	bctx, cancelTab := chromedp.NewContext(actx)
	b := &benchBrowser{ctx: bctx, cancel: func() { cancelTab(); cancelAlloc() }}
	if err := b.login(ctx, password); err != nil {
		b.close()
		return nil, fmt.Errorf("-console: %w", err)
	}
	return b, nil
}

// login logs in on the login page and opens the Status page until its live stream is on.
func (b *benchBrowser) login(ctx context.Context, password string) error {
	base := "http://" + testlab.APIAddr + "/console/"
	steps := []struct{ what, js string }{
		{"the login form", `Boolean(document.querySelector("#user"))`},
		{"log in", fmt.Sprintf(`(() => { document.querySelector("#user").value = %q; document.querySelector("#password").value = %q;
			setTimeout(() => document.querySelector("#login").click(), 0); return true })()`, consoleUser, password)},
		{"the page after the log-in", `location.pathname !== "/console/login" && Boolean(document.querySelector("[data-node]"))`},
	}
	if err := chromedp.Do(b.ctx, chromedp.Navigate(base+"login")); err != nil {
		return fmt.Errorf("open %slogin: %w", base, err)
	}
	for _, s := range steps {
		if err := b.until(ctx, s.what, s.js); err != nil {
			return err
		}
	}
	if err := chromedp.Do(b.ctx, chromedp.Navigate(base+"status")); err != nil {
		return fmt.Errorf("open %sstatus: %w", base, err)
	}
	if err := b.until(ctx, "the Status page's live stream", statusLive); err != nil {
		return err
	}
	_, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(window.notReloaded = true)`))
	return err
}

// statusLive holds while the Status page is shown with its live stream connected.
const statusLive = `location.pathname === "/console/status" && Boolean(document.querySelector("[data-node]")) &&
	(document.getElementById("live-state") || {}).className === "live-state on"`

// check says whether the page is still the Status page it opened, not reloaded, with its live
// stream on (at the end of the window: the browser held the page all along).
func (b *benchBrowser) check() error {
	ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](statusLive+` && window.notReloaded === true`))
	if err != nil {
		return fmt.Errorf("the browser: %w", err)
	}
	if !ok {
		return errors.New("the browser's Status page was reloaded or lost its live stream during the window")
	}
	return nil
}

// until evaluates js in the page until it returns true, for at most 30 s (a page that is
// loading has no document to evaluate in for a moment).
func (b *benchBrowser) until(ctx context.Context, what, js string) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error
	err := poll.Context(wctx, 50*time.Millisecond, func() bool {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js))
		last = err
		return err == nil && ok
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w (last evaluation: %v)", what, err, last)
	}
	return nil
}

func (b *benchBrowser) close() { b.cancel() }
