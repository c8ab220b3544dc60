// Package htmlw writes HTML whose dynamic parts are escaped by construction. The web console
// renders its pages with it instead of html/template: text/template evaluates fields and
// methods by name at run time (reflect.Value.MethodByName), which makes the linker keep every
// exported method of every reachable type in the binary, 2.7 MB of the daemon's 17 MB and
// about 1.5 MiB of its resident memory even with the console off (docs/benchmarks.md,
// "Where redundantd's RSS goes"). The views are plain Go functions that call a Writer.
//
// What the package guarantees, whatever its caller passes as data:
//
//   - Markup (tags, fixed attributes) is only ever a string constant of the program: the
//     parameters that take it have an unexported type, so a caller can pass a literal but
//     not a variable (nor convert one to that type).
//   - Text (T, Tf, Elem) is escaped with html.EscapeString: & < > " ' become references.
//   - A dynamic attribute value (A) is written double-quoted and escaped the same way, so it
//     cannot end its attribute or its tag. Its name is a constant, and it may not be an event
//     handler (on...), style, srcdoc or an attribute that holds a URL (href, src, action, ...):
//     a URL attribute takes a URL (U), and scripts and styles take no dynamic value at all.
//     Open and Elem refuse script and style elements for the same reason.
//   - A URL is built from a constant path of our own; a dynamic part can only be added as a
//     path segment through url.PathEscape or as a query encoded by url.Values.
//   - A rendered fragment (HTML) can only come from a Writer, so putting one into a page
//     (Fragment) adds nothing that was not escaped when it was written.
//
// A violation of the attribute and element rules is a defect of the view, not of the data:
// the Writer panics, and every view is rendered by the console's tests.
package htmlw

import (
	"fmt"
	"html"
	"net/url"
	"strings"
)

// markup is HTML written as is. Only untyped string constants convert to it outside this
// package, since it is not exported.
type markup string

// Writer accumulates a document or a fragment. The zero Writer is ready to use.
type Writer struct {
	b []byte
}

// M writes constant markup.
func (w *Writer) M(m markup) { w.b = append(w.b, m...) }

// T writes text, escaped.
func (w *Writer) T(s string) { w.b = append(w.b, html.EscapeString(s)...) }

// Tf writes fmt.Sprintf(format, args...) as text, escaped: the format is a constant, the
// whole result is escaped, arguments and format alike.
func (w *Writer) Tf(format markup, args ...any) { w.T(fmt.Sprintf(string(format), args...)) }

// Open writes a start tag with its attributes.
func (w *Writer) Open(tag markup, attrs ...Attr) {
	checkTag(tag)
	w.b = append(w.b, '<')
	w.b = append(w.b, tag...)
	for _, a := range attrs {
		a.write(w)
	}
	w.b = append(w.b, '>')
}

// Close writes an end tag.
func (w *Writer) Close(tag markup) {
	checkTag(tag)
	w.b = append(w.b, "</"...)
	w.b = append(w.b, tag...)
	w.b = append(w.b, '>')
}

// Elem writes an element holding text: <tag attrs>text</tag>.
func (w *Writer) Elem(tag markup, text string, attrs ...Attr) {
	w.Open(tag, attrs...)
	w.T(text)
	w.Close(tag)
}

// Fragment writes a fragment rendered by another Writer.
func (w *Writer) Fragment(h HTML) { w.b = append(w.b, h.s...) }

// HTML returns what was written.
func (w *Writer) HTML() HTML { return HTML{string(w.b)} }

// Bytes returns what was written; it is valid until the next write.
func (w *Writer) Bytes() []byte { return w.b }

// HTML is a rendered fragment. Only a Writer makes one.
type HTML struct {
	s string
}

// String returns the fragment's markup.
func (h HTML) String() string { return h.s }

// checkTag refuses a tag name that is not plain lower-case letters and digits, and the
// elements whose content a browser does not parse as escaped text (script, style and the
// other raw-text elements) or that load or embed something. title and textarea are fine:
// character references work in them.
func checkTag(tag markup) {
	if !plainName(string(tag), false) {
		panic(fmt.Sprintf("htmlw: tag %q is not a plain element name", tag))
	}
	switch tag {
	case "script", "style", "iframe", "noscript", "xmp", "noembed", "noframes", "plaintext", "template", "object", "embed":
		panic(fmt.Sprintf("htmlw: no <%s> with dynamic parts; write it as constant markup", tag))
	}
}

// plainName: lower-case letters, digits and (for attributes) '-', starting with a letter.
func plainName(s string, dash bool) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || dash && c == '-') {
			return false
		}
	}
	return true
}

// urlAttr reports the attributes whose value a browser may follow or load (HTML, the URL
// attributes of the elements index, plus the obsolete ones browsers still honour).
func urlAttr(name string) bool {
	switch name {
	case "href", "src", "action", "formaction", "cite", "data", "poster", "background", "codebase",
		"longdesc", "usemap", "manifest", "icon", "ping", "srcset", "imagesrcset", "archive",
		"classid", "profile", "lowsrc", "dynsrc":
		return true
	}
	return false
}

// Attr is one attribute of a start tag.
type Attr struct {
	name  markup
	value string
	kind  attrKind
}

type attrKind uint8

const (
	attrText attrKind = iota // name="escaped value"
	attrURL                  // name="escaped URL", from a URL
	attrOn                   // a boolean attribute that is there
	attrOff                  // a boolean attribute that is not
)

// A is an attribute with a dynamic value. The name must not be an event handler, style,
// srcdoc or a URL attribute (use U): the Writer panics.
func A(name markup, value string) Attr { return Attr{name: name, value: value} }

// U is a URL attribute (href, action, ...; or a data- attribute the page's script reads as
// a URL).
func U(name markup, u URL) Attr { return Attr{name: name, value: u.s, kind: attrURL} }

// Bool is a boolean attribute (selected, disabled, ...), written only when on.
func Bool(name markup, on bool) Attr {
	if on {
		return Attr{name: name, kind: attrOn}
	}
	return Attr{name: name, kind: attrOff}
}

func (a Attr) write(w *Writer) {
	name := string(a.name)
	if !plainName(name, true) {
		panic(fmt.Sprintf("htmlw: attribute %q is not a plain attribute name", name))
	}
	if strings.HasPrefix(name, "on") || name == "style" || name == "srcdoc" {
		panic(fmt.Sprintf("htmlw: attribute %s takes no dynamic value (script or style)", name))
	}
	if a.kind == attrText && urlAttr(name) {
		panic(fmt.Sprintf("htmlw: attribute %s holds a URL: use htmlw.U", name))
	}
	switch a.kind {
	case attrOff:
		return
	case attrOn:
		w.b = append(w.b, ' ')
		w.b = append(w.b, name...)
		return
	}
	w.b = append(w.b, ' ')
	w.b = append(w.b, name...)
	w.b = append(w.b, `="`...)
	w.b = append(w.b, html.EscapeString(a.value)...)
	w.b = append(w.b, '"')
}

// URL is a URL of our own: a constant path, with escaped segments and an encoded query.
type URL struct {
	s string
}

// Path starts a URL from a constant absolute path ("/console/events"). Anything else (a
// scheme, "//host", a relative path) panics: the console links to itself only.
func Path(p markup) URL {
	if !strings.HasPrefix(string(p), "/") || strings.HasPrefix(string(p), "//") || strings.ContainsAny(string(p), "?#\\ ") {
		panic(fmt.Sprintf("htmlw: %q is not an absolute path of this server", p))
	}
	return URL{string(p)}
}

// Seg appends one path segment, escaped with url.PathEscape (a "/" in it stays in the
// segment as %2F).
func (u URL) Seg(s string) URL {
	if !strings.HasSuffix(u.s, "/") {
		u.s += "/"
	}
	u.s += url.PathEscape(s)
	return u
}

// Query appends q, encoded by url.Values.Encode (nothing when q is empty). It may be added
// once.
func (u URL) Query(q url.Values) URL {
	if strings.Contains(u.s, "?") {
		panic("htmlw: the URL has a query already")
	}
	if e := q.Encode(); e != "" {
		u.s += "?" + e
	}
	return u
}

// IsZero reports a URL that was never set.
func (u URL) IsZero() bool { return u.s == "" }

// String returns the URL, unescaped for HTML (for a Location header, say).
func (u URL) String() string { return u.s }
