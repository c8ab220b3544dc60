package htmlw

import (
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// hostile is data an attacker may get into a page: an event's description, a node or user
// name, a service's error text.
var hostile = []string{
	``,
	`plain`,
	`<script>alert(1)</script>`,
	`"><script>alert(1)</script>`,
	`' onmouseover='alert(1)`,
	`" onmouseover="alert(1)`,
	`&amp; &lt; & &#39; &#x27;`,
	`</td></tr></table><img src=x onerror=alert(1)>`,
	"javascript:alert(1)",
	"<!-- comment --> <![CDATA[x]]>",
	"é ü ñ — ● 日本語 🙂",
	"tab\tnew\nline\r\n",
	"`backtick` =equals= /slash/",
}

// TestWriterEscapes: text and attribute values come out escaped (exactly as
// html.EscapeString does), and a real HTML parser reads them back as the one text or the one
// attribute value they were, never as markup.
func TestWriterEscapes(t *testing.T) {
	cases := []struct {
		name  string
		write func(w *Writer, s string)
		want  string // for the input `"><script>alert(1)</script>`
	}{
		{"text", func(w *Writer, s string) { w.M("<p>"); w.T(s); w.M("</p>") },
			`<p>&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</p>`},
		{"elem", func(w *Writer, s string) { w.Elem("td", s) },
			`<td>&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</td>`},
		{"formatted", func(w *Writer, s string) { w.M("<p>"); w.Tf("%s!", s); w.M("</p>") },
			`<p>&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;!</p>`},
		{"attribute", func(w *Writer, s string) { w.Open("p", A("title", s)); w.M("</p>") },
			`<p title="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"></p>`},
		{"data attribute", func(w *Writer, s string) { w.Elem("p", "", A("class", "a"), A("data-node", s)) },
			`<p class="a" data-node="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"></p>`},
		{"fragment", func(w *Writer, s string) {
			var inner Writer
			inner.Elem("b", s)
			w.M("<p>")
			w.Fragment(inner.HTML())
			w.M("</p>")
		}, `<p><b>&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</b></p>`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w Writer
			c.write(&w, hostile[3])
			if got := w.HTML().String(); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
			for _, s := range hostile {
				var w Writer
				c.write(&w, s)
				text, attrs, tags := parse(t, w.HTML().String())
				// A browser reads CR LF as LF (HTML, "Preprocessing the input stream").
				s := strings.ReplaceAll(s, "\r\n", "\n")
				switch {
				case strings.Contains(c.name, "attribute"):
					if got := attrs[len(attrs)-1]; got != s {
						t.Errorf("%q: the attribute reads back as %q", s, got)
					}
					if text != "" {
						t.Errorf("%q: text %q outside the attribute", s, text)
					}
				case c.name == "formatted":
					if text != s+"!" {
						t.Errorf("%q: the text reads back as %q", s, text)
					}
				default:
					if text != s {
						t.Errorf("%q: the text reads back as %q", s, text)
					}
				}
				for _, tag := range tags {
					if tag != "p" && tag != "td" && tag != "b" {
						t.Errorf("%q: made a <%s> element: %s", s, tag, w.HTML())
					}
				}
			}
		})
	}
}

// parse tokenizes doc the way a browser does and returns its text, its attribute values in
// order and its element names.
func parse(t *testing.T, doc string) (text string, attrs, tags []string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(doc))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return text, attrs, tags
		case html.TextToken:
			text += string(z.Text())
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			tags = append(tags, tok.Data)
			for _, a := range tok.Attr {
				attrs = append(attrs, a.Val)
			}
		case html.CommentToken, html.DoctypeToken:
			t.Errorf("a comment or doctype in %s", doc)
		}
	}
}

func TestBooleanAndURLAttributes(t *testing.T) {
	var w Writer
	w.Open("option", Bool("selected", true), Bool("disabled", false))
	w.Open("a", U("href", Path("/console/events").Query(url.Values{"application": {`"><x>`}, "priority": {"2"}})))
	w.Open("a", U("href", Path("/console/node").Seg(`../a b/"<x>`)))
	w.Open("body", U("data-live", Path("/console/live").Query(url.Values{})))
	want := `<option selected><a href="/console/events?application=%22%3E%3Cx%3E&amp;priority=2">` +
		`<a href="/console/node/..%2Fa%20b%2F%22%3Cx%3E"><body data-live="/console/live">`
	if got := w.HTML().String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestWriterRefuses: a view that would put a dynamic value where escaping does not protect
// it (a script, a style, an event handler, a URL attribute without a URL of ours) panics.
func TestWriterRefuses(t *testing.T) {
	cases := []struct {
		name string
		f    func(w *Writer)
	}{
		{"event handler", func(w *Writer) { w.Open("p", A("onclick", "x")) }},
		{"event handler, other", func(w *Writer) { w.Open("img", A("onerror", "x")) }},
		{"upper-case name", func(w *Writer) { w.Open("p", A("onClick", "x")) }},
		{"style", func(w *Writer) { w.Open("p", A("style", "x")) }},
		{"srcdoc", func(w *Writer) { w.Open("p", A("srcdoc", "x")) }},
		{"href as text", func(w *Writer) { w.Open("a", A("href", "javascript:alert(1)")) }},
		{"action as text", func(w *Writer) { w.Open("form", A("action", "/x")) }},
		{"src as text", func(w *Writer) { w.Open("img", A("src", "/x")) }},
		{"name with a space", func(w *Writer) { w.Open("p", A("title x", "x")) }},
		{"name with a quote", func(w *Writer) { w.Open("p", A(`title"`, "x")) }},
		{"script element", func(w *Writer) { w.Elem("script", "alert(1)") }},
		{"style element", func(w *Writer) { w.Open("style") }},
		{"iframe", func(w *Writer) { w.Open("iframe") }},
		{"tag with attributes", func(w *Writer) { w.Open("p onclick=x") }},
		{"close script", func(w *Writer) { w.Close("script") }},
		{"URL with a scheme", func(w *Writer) { Path("javascript:alert(1)") }},
		{"URL of another host", func(w *Writer) { Path("//evil.example/") }},
		{"relative URL", func(w *Writer) { Path("console") }},
		{"URL with a query", func(w *Writer) { Path("/a?b=c") }},
		{"second query", func(w *Writer) { Path("/a").Query(url.Values{"a": {"1"}}).Query(url.Values{"b": {"2"}}) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w Writer
			defer func() {
				if recover() == nil {
					t.Errorf("no panic; wrote %q", w.HTML())
				}
			}()
			c.f(&w)
		})
	}
}
