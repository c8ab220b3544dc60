package labns

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netns"
)

// TestNewAndDo: a namespace from New exists under /run/netns, a listener opened in Do lives
// there (its port is not reachable from the test's namespace), and the calling thread never
// leaves its own namespace.
func TestNewAndDo(t *testing.T) {
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	name, ns := New(t, "labns-test")
	if _, err := os.Stat(filepath.Join("/run/netns", name)); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	var inside, here netns.NsHandle
	var ln net.Listener
	if err := Do(ns, func() error {
		var err error
		if inside, err = netns.Get(); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	defer ln.Close()
	if !inside.Equal(ns) {
		t.Error("Do did not run in the namespace")
	}
	if here, err = netns.Get(); err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	if !here.Equal(orig) {
		t.Error("the test's thread left its namespace")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("a listener inside %s answers in the test's namespace", name)
	}
}
