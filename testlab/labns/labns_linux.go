// Package labns is the one helper for network namespaces in tests and in the lab: create a
// named namespace without moving the caller's thread, run a function inside one, and, in a
// test, make a uniquely named namespace that is removed in t.Cleanup. The lab (testlab),
// the vrrp and berofos privileged tests and redundantlab use it.
package labns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Create creates the named network namespace (/run/netns/name) and returns a handle to it.
// The calling goroutine's thread stays where it was: the work happens on a locked thread
// that is discarded if it cannot be moved back.
func Create(name string) (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{netns.None(), fmt.Errorf("labns: current namespace: %w", err)}
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		// NewNamed moves this thread into the new namespace, unless it failed first.
		stayed := false
		if cur, gerr := netns.Get(); gerr == nil {
			stayed = cur.Equal(orig)
			cur.Close()
		}
		if !stayed {
			if rerr := netns.Set(orig); rerr != nil {
				// This thread is in the wrong namespace: leave it locked so the runtime
				// discards it.
				if err == nil {
					ns.Close()
					Remove(name)
				}
				ch <- result{netns.None(), fmt.Errorf("labns: restore namespace: %w", rerr)}
				return
			}
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("labns: create namespace %s: %w", name, err)
		}
		ch <- result{ns, err}
	}()
	r := <-ch
	return r.ns, r.err
}

// Remove removes the named namespace: it unmounts every mount on /run/netns/name, then the
// file. netns.DeleteNamed unmounts once; a namespace file with two mounts stacked on it is
// left mounted by that, and unlinking it fails with EBUSY (seen once in a full suite run on a
// fresh machine, cause of the second mount not found; TestRemoveStacked makes one). A name
// that does not exist gives an error that is os.ErrNotExist.
func Remove(name string) error {
	p := filepath.Join("/run/netns", name)
	for i := 0; ; i++ {
		err := unix.Unmount(p, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) {
			break // no mount left on it
		}
		if err != nil {
			return fmt.Errorf("labns: unmount %s: %w", p, err)
		}
		if i == 16 {
			return fmt.Errorf("labns: %s still mounted after %d unmounts", p, i+1)
		}
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("labns: %w", err)
	}
	return nil
}

// Do runs fn on a locked OS thread inside ns: sockets, netlink handles and /proc/sys/net
// files fn opens belong to ns, and a process fn starts runs in it. Goroutines fn starts do
// not run in ns.
func Do(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("labns: current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("labns: enter namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime terminates it with the goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("labns: restore namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

var counter atomic.Uint32

// New creates a namespace named prefix-<pid>-<n>, unique on the machine while this process
// runs, and removes it in t.Cleanup, even when the test fails. Without root the test is
// skipped with the reason.
func New(t testing.TB, prefix string) (string, netns.NsHandle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces")
	}
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), counter.Add(1))
	ns, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := Remove(name); err != nil {
			t.Errorf("removing namespace %s: %v", name, err)
		}
	})
	return name, ns
}
