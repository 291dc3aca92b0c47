package config

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sworn-id/sworn/internal/field"
)

// errEmptyBundleFile is what an empty bundle_file says. Config cannot tell
// `bundle_file: ""` (or a template that rendered nothing) from no key at
// all, and with https_web the agent would start without the bootstrap
// bundle its operator meant to give, so Parse looks at the YAML itself.
var errEmptyBundleFile = errors.New(`is empty: name a bundle file (SPIFFE bundle JSON or PEM), or remove the key`)

// withEmptyBundleFiles adds to errs an error for every
// federation.trust_domains[i].bundle_file written with an empty value,
// in place of any other error at that field (https_spiffe's "needs a
// bootstrap bundle" says the same less precisely).
func withEmptyBundleFiles(errs field.List, root *yaml.Node) field.List {
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	fed, _ := child(doc, "federation")
	if fed == nil {
		return errs
	}
	tds, _ := child(fed, "trust_domains")
	if tds == nil || tds.Kind != yaml.SequenceNode {
		return errs
	}
	for i := range tds.Content {
		v, _ := child(tds.Content[i], "bundle_file")
		if v == nil || v.Kind != yaml.ScalarNode || (v.Tag != "!!null" && strings.TrimSpace(v.Value) != "") {
			continue
		}
		path := []string{"federation", "trust_domains", strconv.Itoa(i), "bundle_file"}
		errs = slices.DeleteFunc(errs, func(e *field.Error) bool { return slices.Equal(e.Path, path) })
		errs.Add(errEmptyBundleFile, path...)
	}
	return errs
}
