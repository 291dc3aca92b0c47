package field_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sworn-id/sworn/internal/field"
)

func TestNameReadsAsYAML(t *testing.T) {
	for _, tt := range []struct {
		path []string
		want string
	}{
		{path: []string{"trust_domain"}, want: "trust_domain"},
		{path: []string{"ca", "vault", "auth", "role_id"}, want: "ca.vault.auth.role_id"},
		{path: []string{"rules", "0", "selectors", "1"}, want: "rules[0].selectors[1]"},
	} {
		if got := field.Name(tt.path); got != tt.want {
			t.Errorf("Name(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestListKeepsOrderAndPrefixes(t *testing.T) {
	var l field.List
	if l.Err() != nil {
		t.Fatal("an empty List is an error")
	}
	l.Add(nil, "ignored")
	l.Add(errors.New("second"), "b")
	l.Add(errors.New("first"), "a", "0")
	prefix := make([]string, 1, 4) // spare capacity: Prefix must not share it
	prefix[0] = "ca"
	p := l.Prefix(prefix...)
	if got, want := p.Error(), "ca.b: second; ca.a[0]: first"; got != want {
		t.Fatalf("Prefix = %q, want %q", got, want)
	}
	if p[0].Path[0] != "ca" || p[1].Path[1] != "a" || l[0].Path[0] != "b" {
		t.Fatalf("paths share storage: %q %q, original %q", p[0].Path, p[1].Path, l[0].Path)
	}
	var got field.List
	if err := l.Err(); !errors.As(err, &got) || len(got) != 2 {
		t.Fatalf("Err() = %v, not the List", err)
	}
}

func TestChecksWordTheirMessages(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{name: "relative", err: field.Absolute("a/b"), want: `"a/b" is not an absolute path`},
		{name: "absolute", err: field.Absolute("/a/b")},
		{name: "not one of", err: field.OneOf("x", "a", "b"), want: `"x" is not one of a, b`},
		{name: "one of", err: field.OneOf("b", "a", "b")},
		{name: "too short", err: field.Duration(time.Second, time.Minute, time.Hour), want: "1s is out of range [1m0s, 1h0m0s]"},
		{name: "too long", err: field.Duration(2*time.Hour, time.Minute, time.Hour), want: "2h0m0s is out of range [1m0s, 1h0m0s]"},
		{name: "duration bounds are inclusive", err: field.Duration(time.Hour, time.Minute, time.Hour)},
		{name: "int too small", err: field.Int(0, 1, 9), want: "0 is out of range [1, 9]"},
		{name: "int bounds are inclusive", err: field.Int(9, 1, 9)},
		{name: "http is not https", err: field.HTTPS("http://ca"), want: `"http://ca" is not an https URL`},
		{name: "https without host", err: field.HTTPS("https:///x"), want: `"https:///x" is not an https URL`},
		{name: "https", err: field.HTTPS("https://ca:9000")},
		{name: "no scheme", err: field.HTTP("vault:8200"), want: `"vault:8200" is not an http(s) URL`},
		{name: "http", err: field.HTTP("http://vault:8200")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if tt.err != nil {
				got = tt.err.Error()
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaultFillsOnlyTheZeroValue(t *testing.T) {
	unset, set, wrong := time.Duration(0), time.Minute, -time.Second
	for _, d := range []*time.Duration{&unset, &set, &wrong} {
		field.Default(d, time.Hour)
	}
	if unset != time.Hour || set != time.Minute || wrong != -time.Second {
		t.Fatalf("Default: unset %v, set %v, wrong %v; want 1h, 1m, -1s", unset, set, wrong)
	}
}
