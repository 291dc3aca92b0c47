package attest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sworn-id/sworn/agent/peer"
)

// Attestor reports the selectors of a caller.
type Attestor interface {
	Attest(ctx context.Context, c peer.Caller) ([]Selector, error)
}

// Selector is one attested fact.
type Selector struct {
	Type  string // e.g. "unix"
	Value string // e.g. "uid:1000"
}

// String renders the selector as "type:value".
func (s Selector) String() string { return s.Type + ":" + s.Value }

// ParseSelector parses "type:value". Both parts must be non-empty.
func ParseSelector(s string) (Selector, error) {
	typ, value, ok := strings.Cut(s, ":")
	if !ok || typ == "" || value == "" {
		return Selector{}, fmt.Errorf("selector %q is not of the form type:value (e.g. unix:uid:1000)", s)
	}
	return Selector{Type: typ, Value: value}, nil
}

// Set is a sorted, duplicate-free list of selectors.
type Set []Selector

// NewSet sorts and dedupes selectors.
func NewSet(selectors ...Selector) Set {
	s := slices.Clone(selectors)
	slices.SortFunc(s, compare)
	return slices.Compact(s)
}

// Contains reports whether every selector of sub is in s.
func (s Set) Contains(sub Set) bool {
	for _, x := range sub {
		if _, ok := slices.BinarySearchFunc(s, x, compare); !ok {
			return false
		}
	}
	return true
}

// ErrNotAttested means no selector of the asked-for name was attested.
var ErrNotAttested = errors.New("not attested")

// Lookup returns the value of the selector whose type is typ and whose value
// starts with name followed by ':', e.g. Lookup("unix", "uid") → "1000". It
// fails when there is none or more than one, since a template may only
// render an unambiguous value.
func (s Set) Lookup(typ, name string) (string, error) {
	prefix := name + ":"
	var found []string
	for _, x := range s {
		if x.Type == typ && strings.HasPrefix(x.Value, prefix) {
			found = append(found, strings.TrimPrefix(x.Value, prefix))
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s:%s: %w", typ, name, ErrNotAttested)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s:%s is ambiguous: %d selectors were attested", typ, name, len(found))
}

// Strings renders every selector.
func (s Set) Strings() []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.String()
	}
	return out
}

func compare(a, b Selector) int {
	if c := strings.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return strings.Compare(a.Value, b.Value)
}

// vocabulary lists the selector names each attestor can produce, so that a
// rule naming one that can never be attested is refused at load rather than
// silently never matching.
var vocabulary = map[string][]string{
	"unix": {"uid", "gid", "user", "group", "supplementary_gid", "path", "sha256"},
	"k8s":  {"ns", "sa", "pod-name", "pod-uid", "pod-label", "pod-owner", "container-name", "container-image", "node-name"},
}

// CheckName reports whether typ:name is a selector some attestor produces,
// e.g. CheckName("unix", "uid") or CheckName("k8s", "pod-label").
func CheckName(typ, name string) error {
	names, ok := vocabulary[typ]
	if !ok {
		return fmt.Errorf("unknown selector type %q (want unix or k8s)", typ)
	}
	if !slices.Contains(names, name) {
		return fmt.Errorf("unknown %s selector %q (want one of %s)", typ, name, strings.Join(names, ", "))
	}
	return nil
}

// Check reports whether s could ever be attested. The value after the
// name must not be empty: "unix:uid:" matches no process, and an operator
// who wrote it meant something else (a template variable that expanded to
// nothing, a value lost in an edit). Keyed selectors (pod-label,
// pod-owner) need a non-empty key; a label's own value may be empty, as
// Kubernetes allows.
func (s Selector) Check() error {
	name, rest, _ := strings.Cut(s.Value, ":")
	if err := CheckName(s.Type, name); err != nil {
		return err
	}
	if rest == "" {
		return fmt.Errorf("selector %q has no value after %s:%s: (e.g. %s)", s.String(), s.Type, name, example(s.Type, name))
	}
	if slices.Contains(keyed, name) {
		if key, _, ok := strings.Cut(rest, ":"); !ok || key == "" {
			return fmt.Errorf("selector %q needs %s:%s:<key>:<value> (e.g. %s)", s.String(), s.Type, name, example(s.Type, name))
		}
	}
	return nil
}

// keyed names the selectors whose value is itself key:value.
var keyed = []string{"pod-label", "pod-owner"}

func example(typ, name string) string {
	switch typ + ":" + name {
	case "k8s:pod-label":
		return "k8s:pod-label:app:web"
	case "k8s:pod-owner":
		return "k8s:pod-owner:ReplicaSet:web-5d8f7"
	case "unix:path":
		return "unix:path:/usr/bin/app"
	case "unix:user", "unix:group":
		return typ + ":" + name + ":www-data"
	case "unix:sha256":
		return "unix:sha256:<hex digest>"
	}
	if typ == "unix" {
		return typ + ":" + name + ":1000"
	}
	return typ + ":" + name + ":prod"
}
