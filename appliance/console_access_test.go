package appliance

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redundantd/redundantd/testlab/poll"
)

// TestBackupAccessPortFollowsTheRoles: two real nodes on loopback, each with its console and
// an access port. The Master's access port reaches the Backup's console; the Backup's port
// refuses; after a swap it is the other way round, and a connection the old Master forwarded
// is cut.
func TestBackupAccessPortFollowsTheRoles(t *testing.T) {
	var apiLns, accessLns [2]net.Listener
	for i := range 2 {
		apiLns[i], accessLns[i] = listenLoopback(t), listenLoopback(t)
	}
	_, n := twoNodesWith(t, func(i int, cfg *Config) {
		enableConsole(t, cfg)
		cfg.Console.BackupAccessPort = accessLns[i].Addr().(*net.TCPAddr).Port
		cfg.Console.BackupConsole = apiLns[1-i].Addr().String()
	}, func(i int, o *Options) { o.APIListener, o.AccessListener = apiLns[i], accessLns[i] })

	// Through the Master's port: the Backup's log-in page, a keep-alive connection.
	conn := dialAccess(t, accessLns[0])
	defer conn.Close()
	rd := bufio.NewReader(conn)
	if page := getOver(t, conn, rd); !strings.Contains(page, "pbx-b") {
		t.Fatalf("the Master's access port did not reach pbx-b:\n%s", page)
	}
	poll.Until(t, 5*time.Second, "the forwarded connection counted", func() bool {
		st, _ := n[0].a.Status().Parts["access"].(AccessStatus)
		return st.Forwarding && st.Forwarded == 1 && st.Active == 1
	})
	if !refused(t, accessLns[1]) {
		t.Fatal("the Backup's access port forwarded a connection")
	}

	var res SwapResult
	if code := n[0].call(t, "POST", "/api/v1/swap", `{}`, &res, ""); code != http.StatusOK {
		t.Fatalf("swap: %d %+v", code, res)
	}
	poll.Until(t, 10*time.Second, "the swapped roles", func() bool { return n[0].a.role() == "backup" && n[1].a.role() == "master" })
	// The old Master cut what it forwarded.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := rd.ReadByte(); err != io.EOF {
		t.Fatalf("the connection forwarded by the old Master: %v, want it closed", err)
	}
	// The new Master's port reaches the new Backup; the old Master's refuses.
	poll.Until(t, 5*time.Second, "the new Master forwarding", func() bool {
		st, _ := n[1].a.Status().Parts["access"].(AccessStatus)
		return st.Forwarding
	})
	c2 := dialAccess(t, accessLns[1])
	defer c2.Close()
	if page := getOver(t, c2, bufio.NewReader(c2)); !strings.Contains(page, "pbx-a") {
		t.Fatalf("the new Master's access port did not reach pbx-a:\n%s", page)
	}
	if !refused(t, accessLns[0]) {
		t.Fatal("the old Master's access port still forwards")
	}
	if st, _ := n[0].a.Status().Parts["access"].(AccessStatus); st.Refused == 0 || st.Forwarding {
		t.Fatalf("the old Master's access status: %+v", st)
	}
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func dialAccess(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// getOver sends GET /console/login on c (keep-alive) and returns the answer's body.
func getOver(t *testing.T, c net.Conn, rd *bufio.Reader) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	fmt.Fprintf(c, "GET /console/login HTTP/1.1\r\nHost: %s\r\n\r\n", c.RemoteAddr())
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /console/login through the access port: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// refused reports whether the access port closes a new connection without an answer.
func refused(t *testing.T, ln net.Listener) bool {
	t.Helper()
	c := dialAccess(t, ln)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /console/login HTTP/1.1\r\nHost: %s\r\n\r\n", c.RemoteAddr())
	_, err := bufio.NewReader(c).ReadByte()
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
