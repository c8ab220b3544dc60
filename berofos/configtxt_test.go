package berofos

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// firmware157 is a config.txt as firmware 1.5.7 sends it (the layout bnfos parses), with the
// keys that firmware added (1_szd00, 1_szd01, 2_mail) and checkbox booleans.
const firmware157 = `bnfos_confmap_magic=0.1
1_sz=0
1_rm=1
1_p0=0
1_p1=1
1_szd00=0
1_szd01=0
2_wen=
2_wintv=60
2_as=checked
2_men=
2_mhost=mail.example.com
2_mfrom=fos@example.com
2_mto=admin@example.com
2_mail=
3_dn=fos 1
3_ip=10.34.1.50
3_nm=255.255.255.0
3_gw=10.34.1.1
3_dns=10.34.1.1
3_dhcp=
3_port=80
3_pwd=checked
3_log=checked
3_loghost=10.34.1.2
3_logport=514
4_mode=1
5_p0=0
5_p1=1
6_wen=0
6_wstate=0
0_wretv=0
`

func TestConfigTxtParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string // bnfos key -> decoded value
	}{
		{"firmware 1.5.7", firmware157, map[string]string{
			"scenario": "0", "mode": "1", "modedef": "1", "power2def": "1", "wdogdef": "0", "wdogaudio": "1",
			"hostname": "fos 1", "pwd": "1", "dhcp": "0", "syslog": "1", "slgip": "10.34.1.2", "wdogstate": "0",
			"port": "80", "smtpserv": "mail.example.com",
		}},
		{"CRLF", strings.ReplaceAll(firmware157, "\n", "\r\n"), map[string]string{"mode": "1", "hostname": "fos 1", "pwd": "1", "port": "80"}},
		{"blank lines and unknown keys", "\n\nbnfos_confmap_magic=0.1\n\n9_future=x=y\n4_mode=0\n6_wstate=2\n", map[string]string{"mode": "0", "wdogstate": "2"}},
		{"lines that are not key=value are skipped", "bnfos_confmap_magic=0.1\n<br>\n=1\n4_mode=1\n", map[string]string{"mode": "1"}},
		{"boolean spelled 1", "bnfos_confmap_magic=0.1\n3_pwd=1\n2_wen=0\n", map[string]string{"pwd": "1", "wdogdef": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfigTxt([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for name := range tt.want {
				v, err := c.Get(name)
				if err != nil {
					t.Fatalf("Get(%s): %v", name, err)
				}
				got[name] = v
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigTxtEntriesOrder(t *testing.T) {
	c, err := ParseConfigTxt([]byte("bnfos_confmap_magic=0.1\n4_mode=1\n1_szd00=0\n3_dn=a=b\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := &ConfigTxt{Version: "0.1", Entries: []Entry{{"4_mode", "1"}, {"1_szd00", "0"}, {"3_dn", "a=b"}}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	out, err := c.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("bnfos_confmap_magic=0.1\n4_mode=1\n1_szd00=0\n3_dn=a=b\n", string(out)); diff != "" {
		t.Errorf("MarshalText (-want +got):\n%s", diff)
	}
}

func TestConfigTxtErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     error
		wantText string
	}{
		{"empty", "", ErrNoMagic, "empty answer"},
		{"html page", "<html>\n<body>berofos</body>\n</html>\n", ErrNoMagic, "line 1"},
		{"magic not first", "4_mode=1\nbnfos_confmap_magic=0.1\n", ErrNoMagic, "line 1"},
		{"truncated", "bnfos_confmap_magic=0.1\n4_mode=1\n6_wst", ErrSyntax, "truncated"},
		{"second magic", "bnfos_confmap_magic=0.1\nbnfos_confmap_magic=0.1\n", ErrSyntax, "line 2"},
		{"binary", "\x00\x13\xff\xfe\n=\n", ErrNoMagic, "line 1"},
		{"too large", "bnfos_confmap_magic=0.1\n" + strings.Repeat("x=y\n", MaxConfigSize/4), ErrSyntax, "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfigTxt([]byte(tt.in))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error = %v, want %v mentioning %q", err, tt.want, tt.wantText)
			}
		})
	}
}

// TestConfigTxtDuplicateKey: a body that repeats a key (here the firmware 1.5.7 answer with
// a second, contradicting 4_mode line at the end, as a caching proxy splicing two answers
// produced) is refused with the line of each copy, instead of the last value winning.
func TestConfigTxtDuplicateKey(t *testing.T) {
	golden, err := os.ReadFile("testdata/config-duplicate-mode.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(golden, []byte(firmware157)) {
		t.Fatal("testdata/config-duplicate-mode.txt no longer starts with the firmware 1.5.7 answer")
	}
	_, err = ParseConfigTxt(golden)
	if !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("error = %v, want ErrDuplicateKey", err)
	}
	if diff := cmp.Diff(`config.txt: key given twice: line 33: "4_mode" again (first on line 27)`, err.Error()); diff != "" {
		t.Errorf("error text (-want +got):\n%s", diff)
	}
	for _, tt := range []struct{ name, in string }{
		{"unknown key", "bnfos_confmap_magic=0.1\n9_x=1\n4_mode=1\n9_x=1\n"},
		{"same value twice, CRLF", "bnfos_confmap_magic=0.1\r\n4_mode=1\r\n4_mode=1\r\n"},
		{"empty values", "bnfos_confmap_magic=0.1\n3_dhcp=\n3_dhcp=\n"},
	} {
		if _, err := ParseConfigTxt([]byte(tt.in)); !errors.Is(err, ErrDuplicateKey) {
			t.Errorf("%s: error = %v, want ErrDuplicateKey", tt.name, err)
		}
	}
	// Validate refuses what the parser would refuse, so MarshalText never writes it.
	c := &ConfigTxt{Version: MagicVersion, Entries: []Entry{{"4_mode", "1"}, {"5_p0", "0"}, {"4_mode", "0"}}}
	if _, err := c.MarshalText(); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("MarshalText with 4_mode twice: error = %v, want ErrDuplicateKey", err)
	}
}

func TestConfigTxtGetErrors(t *testing.T) {
	c, err := ParseConfigTxt([]byte("bnfos_confmap_magic=0.1\n3_port=eighty\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("mode"); !errors.Is(err, ErrMissing) {
		t.Errorf("Get(mode) = %v, want ErrMissing", err)
	}
	if _, err := c.Get("apwd"); !errors.Is(err, ErrNotReadable) {
		t.Errorf("Get(apwd) = %v, want ErrNotReadable", err)
	}
	if _, err := c.Get("nosuchkey"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Get(nosuchkey) = %v, want ErrUnknownKey", err)
	}
	if _, err := c.Get("port"); !errors.Is(err, ErrValue) {
		t.Errorf("Get(port) = %v, want ErrValue", err)
	}
}

func TestKeyNormalizeAndSetQuery(t *testing.T) {
	tests := []struct {
		key, value, want string
		wantErr          error
	}{
		{"mode", "1", "/?cmd=4&mode=1", nil},
		{"mode", "yes", "/?cmd=4&mode=1", nil},
		{"mode", "n", "/?cmd=4&mode=0", nil},
		{"power1", "1", "/?cmd=5&p=0&s=1", nil},
		{"power2", "false", "/?cmd=5&p=1&s=0", nil},
		{"hostname", "my fos", "/?cmd=3&dn=my%20fos", nil},
		{"hostname", "a&b=c", "/?cmd=3&dn=a%26b%3Dc", nil},
		{"scenario", "1", "/?cmd=1&sz=1", nil},
		{"wdog", "1", "/?cmd=6&wen=1", nil},
		{"wdogdef", "0", "/?cmd=2&wen=0", nil},
		{"wdogitime", "60", "/?cmd=2&wintv=60", nil},
		{"slgip", "10.0.0.1", "/?cmd=3&slgip=10.0.0.1", nil},
		{"smtptest", "x", "/?cmd=7", nil},
		{"apwd", "0123456789abcde", "/?cmd=3&apwd=0123456789abcde", nil},
		{"apwd", "0123456789abcdef", "", ErrValue},
		{"port", "0", "", ErrValue},
		{"port", "65536", "", ErrValue},
		{"mode", "2", "", ErrValue},
		{"address", "10.0.0", "", ErrValue},
		{"hostname", "a\nb", "", ErrValue},
		{"wdogstate", "1", "", ErrNotWritable},
	}
	for _, tt := range tests {
		k, err := LookupKey(tt.key)
		if err != nil {
			t.Fatal(err)
		}
		v, err := k.Normalize(tt.value)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("Normalize(%s=%q) error = %v, want %v", tt.key, tt.value, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got := SetQuery(k, v); got != tt.want {
			t.Errorf("SetQuery(%s=%q) = %q, want %q", tt.key, tt.value, got, tt.want)
		}
	}
}

func FuzzConfigTxt(f *testing.F) {
	f.Add([]byte(firmware157))
	f.Add([]byte(strings.ReplaceAll(firmware157, "\n", "\r\n")))
	f.Add([]byte("bnfos_confmap_magic=0.1\n\n=\n"))
	f.Add([]byte("bnfos_confmap_magic=0.1\r\r\n4_mode=1\r\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfigTxt(b)
		if err != nil {
			return
		}
		out, err := c.MarshalText()
		if err != nil {
			t.Fatalf("parsed config.txt does not marshal: %v", err)
		}
		c2, err := ParseConfigTxt(out)
		if err != nil {
			t.Fatalf("marshalled config.txt does not parse: %v\n%q", err, out)
		}
		if diff := cmp.Diff(c, c2); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		for _, k := range Keys {
			c.Get(k.Name) // must not panic
		}
		if out2, _ := c2.MarshalText(); !bytes.Equal(out, out2) {
			t.Fatalf("marshal not stable")
		}
	})
}
