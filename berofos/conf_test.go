package berofos

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wazoTwoDevices is the two-device bnfos.conf of the Wazo berofos integration guide.
const wazoTwoDevices = `[fos1]
mac = 00:19:32:00:12:1D
host = 10.100.0.201
login = admin:foobar

[fos2]
mac = 00:11:22:33:44:55
host = 10.100.0.202
login = admin:barfoo
`

func TestParseConf(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Device
	}{
		{"wazo two devices", wazoTwoDevices, []Device{
			{Name: "fos1", MAC: testMAC, Host: "10.100.0.201", Login: "admin:foobar"},
			{Name: "fos2", MAC: net.HardwareAddr{0, 0x11, 0x22, 0x33, 0x44, 0x55}, Host: "10.100.0.202", Login: "admin:barfoo"},
		}},
		{"scan -x output with commented login", "[fos1]\nmac = 00:19:32:00:12:1D\nhost = 10.34.1.50\n#login = <user>:<password>\n",
			[]Device{{Name: "fos1", MAC: testMAC, Host: "10.34.1.50"}}},
		{"CRLF, comments, spacing, unknown key, host:port", "; written by hand\r\n[ fos1 ]\r\n  HOST=127.0.0.1:8080\r\nmac=00-19-32-00-12-1d\r\ncolor = blue\r\n",
			[]Device{{Name: "fos1", MAC: testMAC, Host: "127.0.0.1:8080"}}},
		{"no mac", "[fos1]\nhost = fos.example.com\n", []Device{{Name: "fos1", Host: "fos.example.com"}}},
		{"UTF-8 BOM", "\xef\xbb\xbf[fos1]\nhost = 10.0.0.1\n", []Device{{Name: "fos1", Host: "10.0.0.1"}}},
		{"empty file", "# nothing yet\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConf([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConfErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantLine int
		wantText string
	}{
		{"key before section", "host = 1.2.3.4\n[fos1]\n", 1, "before the first"},
		{"unclosed section", "[fos1\nhost = a\n", 1, "closing"},
		{"bad section name", "[fos 1]\nhost = a\n", 1, "section name"},
		{"duplicate section", "[fos1]\nhost = a\n[fos1]\nhost = b\n", 3, "twice"},
		{"no equals", "[fos1]\nhost 10.0.0.1\n", 2, "key = value"},
		{"bad mac", "[fos1]\nmac = 00:19:32:00:12\nhost = a\n", 2, "mac"},
		{"eui64 mac", "[fos1]\nmac = 00:19:32:00:12:1d:00:01\nhost = a\n", 2, "mac"},
		{"host with space", "[fos1]\nhost = a b\n", 2, "host"},
		{"bad port", "[fos1]\nhost = a:0\n", 2, "port"},
		{"empty host", "[fos1]\nhost =\n", 2, "empty host"},
		{"login without colon", "[fos1]\nhost = a\nlogin = admin\n", 3, "user:password"},
		{"duplicate key", "[fos1]\nhost = a\nhost = b\n", 3, "twice"},
		{"missing host", "[fos1]\nmac = 00:19:32:00:12:1D\n[fos2]\nhost = b\n", 1, "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConf([]byte(tt.in))
			var ce *ConfError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConf) {
				t.Fatalf("error = %v, want a *ConfError", err)
			}
			if ce.Line != tt.wantLine || !strings.Contains(ce.Reason, tt.wantText) {
				t.Errorf("error = %v, want line %d mentioning %q", err, tt.wantLine, tt.wantText)
			}
		})
	}
}

func TestWriteLoadConf(t *testing.T) {
	devs, err := ParseConf([]byte(wazoTwoDevices))
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalConf(devs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wazoTwoDevices, string(b)); diff != "" {
		t.Errorf("MarshalConf (-want +got):\n%s", diff)
	}
	path := filepath.Join(t.TempDir(), "bnfos.conf")
	if err := WriteConf(path, devs); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (the file holds passwords)", fi.Mode().Perm())
	}
	back, err := LoadConf(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(devs, back); diff != "" {
		t.Errorf("LoadConf (-want +got):\n%s", diff)
	}
	if d, err := FindDevice(back, "fos2"); err != nil || d.Host != "10.100.0.202" {
		t.Errorf("FindDevice(fos2) = %v, %v", d, err)
	}
	if _, err := FindDevice(back, "fos3"); !errors.Is(err, ErrConf) {
		t.Errorf("FindDevice(fos3) = %v, want ErrConf", err)
	}
	if err := os.WriteFile(path, []byte("[fos1]\nhost = a\n[fos1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConf(path); err == nil || !strings.Contains(err.Error(), path+": bnfos.conf:3:") {
		t.Errorf("LoadConf of a bad file: %v, want path and line", err)
	}
	if _, err := MarshalConf([]Device{{Name: "fos1", Host: "a"}, {Name: "fos1", Host: "b"}}); !errors.Is(err, ErrConf) {
		t.Errorf("MarshalConf with a duplicate name: %v", err)
	}
}

func FuzzConf(f *testing.F) {
	f.Add([]byte(wazoTwoDevices))
	f.Add([]byte("[fos1]\r\nhost=127.0.0.1:8080\r\n#x\r\n"))
	f.Add([]byte("[fos1]\nmac = 0000.5e00.5301\nhost = [::1]:80\nlogin = a:b c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		devs, err := ParseConf(b)
		if err != nil {
			var ce *ConfError
			if !errors.As(err, &ce) || ce.Reason == "" {
				t.Fatalf("error without line and reason: %v", err)
			}
			return
		}
		out, err := MarshalConf(devs)
		if err != nil {
			t.Fatalf("parsed devices do not marshal: %v", err)
		}
		back, err := ParseConf(out)
		if err != nil {
			t.Fatalf("marshalled conf does not parse: %v\n%s", err, out)
		}
		if diff := cmp.Diff(devs, back); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
