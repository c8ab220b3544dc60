package promtext

import (
	"errors"
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var (
	fUp    = MustFamily("x_up", "1 while up.", Gauge)
	fState = MustFamily("x_state", "State by group.\nSecond line with a \\ backslash.", Gauge, "group", "state")
	fDrop  = MustFamily("x_dropped_total", "Dropped, by reason.", Counter, "reason", "group")
)

// The page is byte for byte what the format asks: families by name, labels by name,
// samples by label values, the escapes of HELP and of label values, the special values.
func TestWriteTo(t *testing.T) {
	var s Set
	s.Add(fUp, 1)
	s.Add(fState, 0, "18", "backup")
	s.Add(fState, 1, "18", "master")
	s.Add(fState, 0, "18", "initialize")
	s.Add(fDrop, 3, `ttl "64"`+"\n\\", "18")
	s.Add(fDrop, math.Inf(1), "auth", "18")
	s.Add(fDrop, 1733112345.25, "auth", "17")
	var b strings.Builder
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP x_dropped_total Dropped, by reason.
# TYPE x_dropped_total counter
x_dropped_total{group="17",reason="auth"} 1.73311234525e+09
x_dropped_total{group="18",reason="auth"} +Inf
x_dropped_total{group="18",reason="ttl \"64\"\n\\"} 3
# HELP x_state State by group.\nSecond line with a \\ backslash.
# TYPE x_state gauge
x_state{group="18",state="backup"} 0
x_state{group="18",state="initialize"} 0
x_state{group="18",state="master"} 1
# HELP x_up 1 while up.
# TYPE x_up gauge
x_up 1
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// Prometheus's own parser reads the page back to the same families, label values and
// values, hostile label values included.
func TestPrometheusParsesIt(t *testing.T) {
	hostile := []string{`"`, `\`, "\n", `\n`, `a"b\"c`, "é ü", "", "} 1\nx_up 2"}
	var s Set
	for i, h := range hostile {
		s.Add(fDrop, float64(i), h, "g")
	}
	s.Add(fUp, math.NaN())
	var b strings.Builder
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b.String())
	}
	if len(fams) != 2 {
		t.Fatalf("%d families, want 2: %v", len(fams), fams)
	}
	d := fams["x_dropped_total"]
	if d.GetType() != dto.MetricType_COUNTER || d.GetHelp() != "Dropped, by reason." || len(d.Metric) != len(hostile) {
		t.Fatalf("x_dropped_total = %v", d)
	}
	got := map[string]float64{}
	for _, m := range d.Metric {
		var reason, group string
		for _, l := range m.Label {
			switch l.GetName() {
			case "reason":
				reason = l.GetValue()
			case "group":
				group = l.GetValue()
			}
		}
		if group != "g" {
			t.Errorf("group = %q", group)
		}
		got[reason] = m.GetCounter().GetValue()
	}
	for i, h := range hostile {
		if v, ok := got[h]; !ok || v != float64(i) {
			t.Errorf("reason %q: %v %v, want %d", h, v, ok, i)
		}
	}
	if u := fams["x_up"]; u.GetType() != dto.MetricType_GAUGE || !math.IsNaN(u.Metric[0].GetGauge().GetValue()) {
		t.Errorf("x_up = %v", u)
	}
}

func TestNewFamilyRefuses(t *testing.T) {
	for _, tt := range []struct {
		name   string
		typ    Type
		labels []string
	}{
		{"", Gauge, nil},
		{"1up", Gauge, nil},
		{"x-up", Gauge, nil},
		{"x_up", "summary", nil},
		{"x_runs", Counter, nil},
		{"x_up", Gauge, []string{"a:b"}},
		{"x_up", Gauge, []string{"__name"}},
		{"x_up", Gauge, []string{"9"}},
		{"x_up", Gauge, []string{"a", "b", "a"}},
	} {
		if _, err := NewFamily(tt.name, "h", tt.typ, tt.labels...); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewFamily(%q, %q, %q) = %v, want ErrInvalid", tt.name, tt.typ, tt.labels, err)
		}
	}
	if _, err := NewFamily("a:b_total", "h", Counter, "_x", "y9"); err != nil {
		t.Errorf("valid family refused: %v", err)
	}
}

// Add's mistakes are reported by WriteTo, and the good samples are still written.
func TestAddErrors(t *testing.T) {
	var s Set
	s.Add(fState, 1, "18")                       // one value for two labels
	s.Add(fState, 1, "18", "master")             // good
	s.Add(fState, 2, "18", "master")             // the same labels twice
	s.Add(fState, 1, "18", string([]byte{0xff})) // not UTF-8
	var b strings.Builder
	_, err := s.WriteTo(&b)
	if !errors.Is(err, ErrInvalid) || strings.Count(err.Error(), "promtext: invalid") != 3 {
		t.Errorf("err = %v, want the three mistakes", err)
	}
	if !strings.Contains(b.String(), `x_state{group="18",state="master"} 1`+"\n") || strings.Count(b.String(), "x_state{") != 1 {
		t.Errorf("page:\n%s", b.String())
	}
}
