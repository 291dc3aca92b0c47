// Command helm-render renders a Helm chart as `helm template` does, with
// the Helm SDK (helm.sh/helm/v3, pinned in this module's go.mod), for
// sworn's tests: they check the rendered manifests against a real
// kube-apiserver. It lives in its own module so Helm's dependency graph
// never enters sworn's go.mod; `make .bin/helm-render` builds it.
//
//	helm-render [-f values.yaml]... [--set k=v]... [--api-versions group/version]... [--kube-version v1.x.y] CHART
//
// The manifests go to stdout; a chart or values error (values.schema.json
// included) goes to stderr and the exit status is 1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "helm-render:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("helm-render", flag.ContinueOnError)
	var opts values.Options
	var apiVersions list
	fs.Var((*list)(&opts.ValueFiles), "f", "a values file (repeatable)")
	fs.Var((*list)(&opts.Values), "set", "a value as key=value (repeatable)")
	fs.Var((*list)(&opts.StringValues), "set-string", "a string value as key=value (repeatable)")
	fs.Var(&apiVersions, "api-versions", "an API version the cluster serves, for .Capabilities (repeatable)")
	kubeVersion := fs.String("kube-version", "", "the cluster's Kubernetes version, for .Capabilities and the chart's kubeVersion (default: Helm's)")
	name := fs.String("name", "sworn", "release name")
	namespace := fs.String("namespace", "sworn", "release namespace")
	notes := fs.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("give exactly one chart directory")
	}
	chrt, err := loader.Load(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("load chart: %w", err)
	}
	vals, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		return fmt.Errorf("values: %w", err)
	}
	// As `helm template`: a client-only dry-run install, with no cluster.
	inst := action.NewInstall(new(action.Configuration))
	inst.DryRun, inst.ClientOnly, inst.Replace, inst.IncludeCRDs = true, true, true, true
	inst.ReleaseName, inst.Namespace = *name, *namespace
	inst.APIVersions = chartutil.VersionSet(apiVersions)
	if *kubeVersion != "" {
		if inst.KubeVersion, err = chartutil.ParseKubeVersion(*kubeVersion); err != nil {
			return fmt.Errorf("-kube-version: %w", err)
		}
	}
	rel, err := inst.Run(chrt, vals)
	if err != nil {
		return err
	}
	if *notes {
		_, err = fmt.Fprint(out, rel.Info.Notes)
	} else {
		_, err = fmt.Fprint(out, rel.Manifest)
	}
	return err
}
