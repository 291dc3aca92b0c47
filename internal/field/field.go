package field

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Error is a problem with one field.
type Error struct {
	// Path holds the YAML keys from the validated section down to the
	// field; a sequence index is a decimal segment.
	Path []string
	Err  error
}

func (e *Error) Error() string { return Name(e.Path) + ": " + e.Err.Error() }

// Unwrap returns the problem without the field's name.
func (e *Error) Unwrap() error { return e.Err }

// Name renders a path as it reads in YAML terms: rules[0].selectors[1].
func Name(path []string) string {
	var b strings.Builder
	for _, seg := range path {
		if _, err := strconv.Atoi(seg); err == nil {
			b.WriteString("[" + seg + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}

// List is the errors of one validation, in the order they were found.
type List []*Error

// Add appends err at path unless err is nil.
func (l *List) Add(err error, path ...string) {
	if err != nil {
		*l = append(*l, &Error{Path: path, Err: err})
	}
}

// Prefix returns the errors with prefix put in front of each path: how a
// section's errors read from the file's root.
func (l List) Prefix(prefix ...string) List {
	out := make(List, len(l))
	for i, e := range l {
		out[i] = &Error{Path: append(slices.Clip(prefix), e.Path...), Err: e.Err}
	}
	return out
}

// Err returns the List as an error, or nil if it is empty.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func (l List) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Default sets *f to def if *f is the zero value: an unset field. A value
// set wrong (a negative duration) is left for validation to refuse.
func Default[T comparable](f *T, def T) {
	var zero T
	if *f == zero {
		*f = def
	}
}

// Absolute requires p to be an absolute path.
func Absolute(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	return nil
}

// OneOf requires v to be one of allowed.
func OneOf[T ~string](v T, allowed ...T) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return fmt.Errorf("%q is not one of %s", string(v), strings.Join(names, ", "))
}

// Duration requires lo <= d <= hi.
func Duration(d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("%v is out of range [%v, %v]", d, lo, hi)
	}
	return nil
}

// Int requires lo <= v <= hi.
func Int(v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%d is out of range [%d, %d]", v, lo, hi)
	}
	return nil
}

// HTTPS requires s to be an https URL with a host.
func HTTPS(s string) error {
	if !isURL(s, "https") {
		return fmt.Errorf("%q is not an https URL", s)
	}
	return nil
}

// HTTP requires s to be an http or https URL with a host.
func HTTP(s string) error {
	if !isURL(s, "https", "http") {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

func isURL(s string, schemes ...string) bool {
	u, err := url.Parse(s)
	return err == nil && slices.Contains(schemes, u.Scheme) && u.Host != ""
}

// HostPort requires host:port with a port from 0 to 65535 (0: any free
// port); the host may be empty (every address).
func HostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return err // "address nohost: missing port in address"
	}
	n, err := strconv.ParseUint(port, 10, 64)
	switch {
	case err != nil:
		return fmt.Errorf("port %q is not a number", port)
	case n > 65535:
		return fmt.Errorf("port %d is out of range: ports go from 0 to 65535", n)
	}
	return nil
}
