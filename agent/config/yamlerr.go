package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sworn-id/sworn/internal/field"
)

// What yaml.v3 says about a file it cannot decode into Config, in the
// Go terms operators should never see ("field x not found in type
// config.Rule", "cannot unmarshal !!int `5` into []config.Rule").
var (
	unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)
	wrongType    = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
	wrongKind    = regexp.MustCompile(`^line (\d+): cannot unmarshal !!(\w+) into (\S+)$`)
	atLine       = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// maxDecodeErrors is how many decoding problems an error lists.
const maxDecodeErrors = 20

// decodeError rewrites a decoding error as file:line: field: problem, the
// form of every other config error.
func decodeError(name string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := atLine.FindStringSubmatch(msg); m != nil {
			return fmt.Errorf("config: %s:%s: %s", name, m[1], m[2])
		}
		return fmt.Errorf("config: %s: %s", name, msg)
	}
	// Each problem walks the tree to name its field: a file with thousands
	// of wrong fields would take seconds and print megabytes. The first
	// few say what is wrong; the count says how much.
	msgs := make([]string, 0, min(len(te.Errors), maxDecodeErrors)+1)
	for _, e := range te.Errors[:min(len(te.Errors), maxDecodeErrors)] {
		msgs = append(msgs, typeProblem(name, root, e))
	}
	if n := len(te.Errors) - maxDecodeErrors; n > 0 {
		msgs = append(msgs, fmt.Sprintf("%s: and %d more problems like these", name, n))
	}
	return fmt.Errorf("config: %s", strings.Join(msgs, "\n  "))
}

func typeProblem(name string, root *yaml.Node, e string) string {
	if m := unknownField.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		path, _ := pathTo(root, line, m[2], true)
		path = append(path, m[2])
		return fmt.Sprintf("%s:%d: %s: unknown field; check its spelling and indentation (the README's configuration table lists every field)", name, line, field.Name(path))
	}
	if m := wrongType.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		path, _ := pathTo(root, line, "", false)
		return fmt.Sprintf("%s:%d: %s: want %s, got %s %q", name, line, field.Name(path), kindOf(m[4]), yamlKind(m[2]), m[3])
	}
	if m := wrongKind.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		path, _ := pathTo(root, line, "", false)
		return fmt.Sprintf("%s:%d: %s: want %s, got %s", name, line, field.Name(path), kindOf(m[3]), yamlKind(m[2]))
	}
	if m := atLine.FindStringSubmatch(e); m != nil {
		return fmt.Sprintf("%s:%s: %s", name, m[1], m[2])
	}
	return name + ": " + e
}

// pathTo finds the field at line: the mapping key named key (isKey), or
// the key or sequence item whose value starts there. ok is false when
// nothing in n matches.
func pathTo(n *yaml.Node, line int, key string, isKey bool) (path []string, ok bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) > 0 {
			return pathTo(n.Content[0], line, key, isKey)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if isKey && k.Line == line && k.Value == key {
				return nil, true
			}
			// A value on its key's line is the outermost node there
			// (ttl: [1h] is wrong as a list, not in its item).
			if !isKey && k.Line == line && v.Line == line {
				return []string{k.Value}, true
			}
			if p, ok := pathTo(v, line, key, isKey); ok {
				return append([]string{k.Value}, p...), true
			}
			if !isKey && v.Line == line {
				return []string{k.Value}, true
			}
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			if p, ok := pathTo(v, line, key, isKey); ok {
				return append([]string{strconv.Itoa(i)}, p...), true
			}
			if !isKey && v.Line == line {
				return []string{strconv.Itoa(i)}, true
			}
		}
	}
	return nil, false
}

// kindOf names a Go type in YAML terms.
func kindOf(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case strings.HasSuffix(goType, "Duration"):
		return "a duration such as 90s, 30m or 1h"
	case goType == "string" || strings.HasSuffix(goType, "KeyType"):
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint") || strings.HasPrefix(goType, "float"):
		return "a number"
	}
	return "a mapping"
}

// yamlKind names a YAML tag (without !!) for people.
func yamlKind(tag string) string {
	switch tag {
	case "int", "float":
		return "the number"
	case "str":
		return "the string"
	case "bool":
		return "the boolean"
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	case "null":
		return "nothing"
	}
	return tag
}
