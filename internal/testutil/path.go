package testutil

import (
	"net/url"
	"strings"
)

// ResolvePath is what a resolving backend serves for a raw request path:
// percent-decoded once, slashes merged, dot segments removed (RFC 3986
// 5.2.4), a trailing slash kept (a final "." or ".." segment leaves one).
// It is the oracle the HTTP-path fuzz tests compare sworn's decision with;
// false means the path does not decode.
func ResolvePath(raw string) (string, bool) {
	dec, err := url.PathUnescape(raw)
	if err != nil {
		return "", false
	}
	var out []string
	for _, s := range strings.Split(dec, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	p := "/" + strings.Join(out, "/")
	if len(out) > 0 && (strings.HasSuffix(dec, "/") || strings.HasSuffix(dec, "/.") || strings.HasSuffix(dec, "/..")) {
		p += "/"
	}
	return p, true
}
