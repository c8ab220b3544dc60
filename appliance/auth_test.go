package appliance

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAPIGuard(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	loop := newAPIGuard("127.0.0.1:7400", tok, nil)
	lan := newAPIGuard("192.0.2.11:7400", tok, []string{"pbx-a.example.net"})
	tests := []struct {
		name   string
		g      apiGuard
		method string
		host   string
		auth   string
		ctype  string
		body   string
		want   int // 0: allowed
	}{
		{"loopback read without a token", loop, "GET", "127.0.0.1:7400", "", "", "", 0},
		{"loopback read as localhost", loop, "GET", "localhost:7400", "", "", "", 0},
		{"rebinding name refused", loop, "GET", "attacker.example:7400", "", "", "", http.StatusMisdirectedRequest},
		{"mutating without a token", loop, "POST", "127.0.0.1:7400", "", "application/json", "{}", http.StatusUnauthorized},
		{"mutating with a wrong token", loop, "POST", "127.0.0.1:7400", "Bearer " + strings.Repeat("0", 32), "application/json", "{}", http.StatusUnauthorized},
		{"mutating with the token as Basic", loop, "POST", "127.0.0.1:7400", "Basic " + tok, "application/json", "{}", http.StatusUnauthorized},
		{"mutating with the token", loop, "POST", "127.0.0.1:7400", "Bearer " + tok, "application/json", "{}", 0},
		{"mutating with the token, no body", loop, "POST", "127.0.0.1:7400", "Bearer " + tok, "", "", 0},
		{"form post refused", loop, "POST", "127.0.0.1:7400", "Bearer " + tok, "application/x-www-form-urlencoded", "mode=passive", http.StatusUnsupportedMediaType},
		{"text/plain post refused", loop, "PUT", "127.0.0.1:7400", "Bearer " + tok, "text/plain", "{}", http.StatusUnsupportedMediaType},
		{"json with charset", loop, "PUT", "127.0.0.1:7400", "Bearer " + tok, "application/json; charset=utf-8", "{}", 0},
		{"LAN read needs the token", lan, "GET", "192.0.2.11:7400", "", "", "", http.StatusUnauthorized},
		{"LAN read with the token", lan, "GET", "192.0.2.11:7400", "Bearer " + tok, "", "", 0},
		{"LAN configured name", lan, "GET", "PBX-A.example.net.:7400", "Bearer " + tok, "", "", 0},
		{"LAN other name", lan, "GET", "pbx-b.example.net:7400", "Bearer " + tok, "", "", http.StatusMisdirectedRequest},
		{"IPv6 literal", lan, "GET", "[2001:db8::1]:7400", "Bearer " + tok, "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/api/v1/status", strings.NewReader(tc.body))
			r.Host = tc.host
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			got := 0
			if err := tc.g.check(r); err != nil {
				got = err.code
			}
			if got != tc.want {
				t.Errorf("check = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestLoadOrCreateToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "api.token")
	tok, err := LoadOrCreateToken(path)
	if err != nil || len(tok) != 64 {
		t.Fatalf("created token %q, %v", tok, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v", fi.Mode(), err)
	}
	again, err := LoadOrCreateToken(path)
	if err != nil || again != tok {
		t.Errorf("second load %q, %v; want the same token", again, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("world-readable token file: err = %v", err)
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(short); err == nil {
		t.Error("a 3-character token was accepted")
	}
}
