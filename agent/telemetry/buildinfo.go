package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sworn-id/sworn/internal/version"
)

// buildInfo is sworn_build_info, always 1: its labels carry the build facts
// `sworn version` prints, so a dashboard can tell which nodes run which
// build (the pattern Prometheus's own *_build_info follows). One series per
// process, so the labels stay bounded.
func buildInfo(v version.Info) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sworn_build_info", Help: "Always 1; labelled with the version, commit and Go version this agent was built with.",
	}, []string{"version", "commit", "go_version"})
	g.WithLabelValues(v.Version, v.Commit, v.GoVersion).Set(1)
	return g
}
