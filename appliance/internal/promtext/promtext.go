// Package promtext writes the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), for the appliance's
// /metrics.
//
// It replaces github.com/prometheus/client_golang in the daemon. That library registers
// protocol buffer descriptors at start-up and links google.golang.org/protobuf: a
// program serving one gauge through it is 2.9 MB larger and 2.9 MiB bigger in memory than
// the same program without it (docs/benchmarks.md, "resources"), more than the whole gap
// between redundantd and keepalived. The appliance computes every metric at scrape time
// from its status snapshots (const metrics, no registry), so all it needs is the writer.
// The tests parse the output with Prometheus's own parser and check it with promtool.
package promtext

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ContentType is the exposition's media type (version 0.0.4 of the text format).
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a metric family's type, as the TYPE line names it.
type Type string

// The types the appliance uses: a gauge can go up and down; a counter only goes up while
// the daemon runs (its name ends in _total).
const (
	Gauge   Type = "gauge"
	Counter Type = "counter"
)

// ErrInvalid wraps every error of Family's and Set's checks.
var ErrInvalid = errors.New("promtext: invalid")

// Family is one metric: its name, help text, type and label names. Make families once
// (package variables) with MustFamily; their samples go into a Set at each scrape.
type Family struct {
	name, help string
	typ        Type
	labels     []string
}

// NewFamily checks the name and the label names (the data model's character sets, no
// reserved "__" label, no label twice; a counter's name ends in _total) and returns the
// family.
func NewFamily(name, help string, typ Type, labels ...string) (*Family, error) {
	if !validName(name, true) {
		return nil, fmt.Errorf("%w: metric name %q", ErrInvalid, name)
	}
	if typ != Gauge && typ != Counter {
		return nil, fmt.Errorf("%w: %s: type %q", ErrInvalid, name, typ)
	}
	if typ == Counter && !strings.HasSuffix(name, "_total") {
		return nil, fmt.Errorf("%w: counter %s does not end in _total", ErrInvalid, name)
	}
	for i, l := range labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") || slices.Contains(labels[:i], l) {
			return nil, fmt.Errorf("%w: %s: label name %q", ErrInvalid, name, l)
		}
	}
	return &Family{name: name, help: help, typ: typ, labels: slices.Clone(labels)}, nil
}

// MustFamily is NewFamily for package variables: a bad name is a programming error.
func MustFamily(name, help string, typ Type, labels ...string) *Family {
	f, err := NewFamily(name, help, typ, labels...)
	if err != nil {
		panic(err)
	}
	return f
}

// Name returns the family's metric name.
func (f *Family) Name() string { return f.name }

// validName: [a-zA-Z_:][a-zA-Z0-9_:]* for metric names, the same without ':' for labels.
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (colon && c == ':') ||
			(i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

type sample struct {
	values []string // in the family's label order
	v      float64
}

// Set gathers one scrape's samples. The zero value is ready to use; a Set is not safe
// for concurrent use.
type Set struct {
	fams    []*Family
	samples map[*Family][]sample
	errs    []error
}

// Add records a sample of f with the label values in f's label order. A wrong number of
// values, invalid UTF-8 in a value or a label set already added to f is an error that
// WriteTo returns after writing the rest.
func (s *Set) Add(f *Family, v float64, values ...string) {
	if len(values) != len(f.labels) {
		s.errs = append(s.errs, fmt.Errorf("%w: %s: %d label values for %d labels", ErrInvalid, f.name, len(values), len(f.labels)))
		return
	}
	for _, lv := range values {
		if !utf8.ValidString(lv) {
			s.errs = append(s.errs, fmt.Errorf("%w: %s: label value %q is not UTF-8", ErrInvalid, f.name, lv))
			return
		}
	}
	if s.samples == nil {
		s.samples = map[*Family][]sample{}
	}
	old, seen := s.samples[f]
	if !seen {
		s.fams = append(s.fams, f)
	}
	for _, o := range old {
		if slices.Equal(o.values, values) {
			s.errs = append(s.errs, fmt.Errorf("%w: %s: label values %q twice", ErrInvalid, f.name, values))
			return
		}
	}
	s.samples[f] = append(old, sample{values: slices.Clone(values), v: v})
}

// WriteTo writes the families in name order, each with its HELP and TYPE lines and its
// samples ordered by label values, labels by name (as client_golang orders them, so the
// page reads the same from scrape to scrape). It returns the bytes written and, after a
// write error or Add's errors, the first of them.
func (s *Set) WriteTo(w io.Writer) (int64, error) {
	fams := slices.Clone(s.fams)
	slices.SortFunc(fams, func(a, b *Family) int { return strings.Compare(a.name, b.name) })
	var b []byte
	for _, f := range fams {
		b = f.appendFamily(b, s.samples[f])
	}
	n, err := w.Write(b)
	if err == nil && len(s.errs) > 0 {
		err = errors.Join(s.errs...)
	}
	return int64(n), err
}

func (f *Family) appendFamily(b []byte, samples []sample) []byte {
	b = append(b, "# HELP "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = appendEscaped(b, f.help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = append(b, f.typ...)
	b = append(b, '\n')
	order := make([]int, len(f.labels)) // label positions in name order
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return strings.Compare(f.labels[x], f.labels[y]) })
	samples = slices.Clone(samples)
	slices.SortFunc(samples, func(x, y sample) int {
		for _, i := range order {
			if c := strings.Compare(x.values[i], y.values[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	for _, sm := range samples {
		b = append(b, f.name...)
		if len(order) > 0 {
			b = append(b, '{')
			for k, i := range order {
				if k > 0 {
					b = append(b, ',')
				}
				b = append(b, f.labels[i]...)
				b = append(b, `="`...)
				b = appendEscaped(b, sm.values[i], true)
				b = append(b, '"')
			}
			b = append(b, '}')
		}
		b = append(b, ' ')
		b = appendValue(b, sm.v)
		b = append(b, '\n')
	}
	return b
}

// appendEscaped escapes as the format asks: backslash and newline in HELP text, and the
// double quote too in label values.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendValue writes a sample value as Go's shortest float, and the format's +Inf, -Inf
// and NaN.
func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
