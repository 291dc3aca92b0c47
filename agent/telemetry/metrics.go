package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sworn-id/sworn/internal/version"
)

// Metrics are the agent's instruments.
type Metrics struct {
	Registry *prometheus.Registry

	SVIDsIssued         *prometheus.CounterVec // reason: new, renewal
	IssueLatency        prometheus.Histogram
	IssueFailures       *prometheus.CounterVec // reason: new, renewal
	RotationFailures    prometheus.Counter
	OpenStreams         *prometheus.GaugeVec // method
	Requests            *prometheus.CounterVec
	AttestationLatency  prometheus.Histogram
	AttestationFailures prometheus.Counter
	CAReachable         prometheus.Gauge
	BadCertificates     prometheus.Counter

	JWTCacheEvictions  *prometheus.CounterVec // reason: expired, uid_share, total, too_large
	ConnectionsRefused *prometheus.CounterVec // reason: uid_limit, total_limit
	StreamsRefused     prometheus.Counter
	StalledSends       prometheus.Counter

	FederationFetchFailures *prometheus.CounterVec // trust_domain

	SDSStreams prometheus.Gauge
	SDSPushes  prometheus.Counter
	SDSNacks   prometheus.Counter

	// ClusterSPIFFEIDs: objects by state (accepted, refused), rules made
	// for this node's pods, and (object, pod) pairs that failed to render.
	ClusterSPIFFEIDs *prometheus.GaugeVec
	// ClusterSPIFFEIDStatus counts status writes considered, by result.
	ClusterSPIFFEIDStatus *prometheus.CounterVec
}

// New registers the agent's metrics in a fresh registry, with the Go and
// process collectors and sworn_build_info.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo(version.Get()))
	latency := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		Registry: r,
		SVIDsIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sworn_svids_issued_total", Help: "X.509-SVIDs issued, by reason (new, renewal).",
		}, []string{"reason"}),
		IssueLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sworn_svid_issue_duration_seconds", Help: "Time to generate a key and have the CA sign an X.509-SVID.", Buckets: latency,
		}),
		IssueFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sworn_svid_issue_failures_total", Help: "X.509-SVID issuances that failed, by reason (new, renewal).",
		}, []string{"reason"}),
		RotationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sworn_svid_rotation_failures_total", Help: "Renewals that failed and will be retried with backoff.",
		}),
		OpenStreams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sworn_workload_api_open_streams", Help: "Workload API streams open now, by method.",
		}, []string{"method"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sworn_workload_api_requests_total", Help: "Workload API calls, by method and final gRPC code.",
		}, []string{"method", "code"}),
		AttestationLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sworn_attestation_duration_seconds", Help: "Time to attest a caller.", Buckets: latency,
		}),
		AttestationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sworn_attestation_failures_total", Help: "Callers that could not be attested or exited during attestation.",
		}),
		CAReachable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sworn_ca_reachable", Help: "1 if the CA answered the last call (a refusal of the agent included: see /ready), 0 if the CA is unreachable.",
		}),
		BadCertificates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sworn_ca_bad_certificates_total", Help: "Certificates from the CA refused for breaking the X.509-SVID profile (alert on any).",
		}),
	}
	m.JWTCacheEvictions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sworn_jwt_cache_evictions_total", Help: "JWT-SVIDs dropped from the cache, by reason (expired, uid_share, total, too_large).",
	}, []string{"reason"})
	m.ConnectionsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sworn_workload_api_connections_refused_total", Help: "Workload API connections closed at accept, by limit hit (uid_limit, total_limit).",
	}, []string{"reason"})
	m.StreamsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sworn_workload_api_streams_refused_total", Help: "Workload API calls refused with ResourceExhausted because their uid held limits.max_streams_per_uid.",
	})
	m.StalledSends = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sworn_workload_api_stalled_connections_closed_total", Help: "Workload API connections closed because a stream's send stayed blocked longer than limits.stream_send_timeout.",
	})
	m.FederationFetchFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sworn_federation_fetch_failures_total", Help: "Federated bundle fetches that failed or were refused, by trust_domain; the last good bundle is kept.",
	}, []string{"trust_domain"})
	m.SDSStreams = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sworn_sds_open_streams", Help: "Envoy SDS StreamSecrets calls open now.",
	})
	m.SDSPushes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sworn_sds_pushes_total", Help: "SDS responses sent on StreamSecrets streams (first answers and updates).",
	})
	m.SDSNacks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sworn_sds_nacks_total", Help: "SDS requests in which Envoy rejected the secrets last sent (error_detail set); each is logged.",
	})
	m.ClusterSPIFFEIDs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sworn_cluster_spiffeids", Help: "From ClusterSPIFFEID objects, by state: accepted and refused objects, other_class (objects of another className, not read), rules in force for this node's pods, masked (rules dropped: an older object gave the pod the same ID), render_failures (object and pod pairs that rendered no identity; each is logged).",
	}, []string{"state"})
	m.ClusterSPIFFEIDStatus = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sworn_cluster_spiffeid_status_writes_total", Help: "ClusterSPIFFEID status writes this agent considered, by result: written, skipped (another agent had written it), conflict, error.",
	}, []string{"result"})
	m.CAReachable.Set(1)
	r.MustRegister(m.ClusterSPIFFEIDs, m.ClusterSPIFFEIDStatus)
	r.MustRegister(m.SDSStreams, m.SDSPushes, m.SDSNacks)
	r.MustRegister(m.SVIDsIssued, m.IssueLatency, m.IssueFailures, m.RotationFailures, m.OpenStreams,
		m.Requests, m.AttestationLatency, m.AttestationFailures, m.CAReachable, m.BadCertificates,
		m.JWTCacheEvictions, m.ConnectionsRefused, m.StreamsRefused, m.StalledSends, m.FederationFetchFailures)
	return m
}

// WatchCache registers gauges read from the SVID cache at scrape time.
func (m *Metrics) WatchCache(identities func() int, earliestExpiry func() (time.Time, bool)) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sworn_cached_identities", Help: "X.509-SVIDs held in the cache.",
		}, func() float64 { return float64(identities()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sworn_svid_earliest_expiry_seconds", Help: "Seconds until the earliest cached X.509-SVID expires (0 when none is cached).",
		}, func() float64 {
			t, ok := earliestExpiry()
			if !ok {
				return 0
			}
			return time.Until(t).Seconds()
		}),
	)
}

// WatchLimits registers gauges read at scrape time: open Workload API
// connections and bytes held by the JWT-SVID cache (either may be nil).
func (m *Metrics) WatchLimits(connections func() int, jwtCacheBytes func() int) {
	if connections != nil {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sworn_workload_api_connections", Help: "Workload API connections open now.",
		}, func() float64 { return float64(connections()) }))
	}
	if jwtCacheBytes != nil {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sworn_jwt_cache_bytes", Help: "Bytes the JWT-SVID cache holds, as counted against limits.jwt_cache_bytes.",
		}, func() float64 { return float64(jwtCacheBytes()) }))
	}
}
