package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/internal/field"
)

// validate checks every section of a Config whose defaults are set, in
// document order of the sections, so Validate's message is stable too.
func (c *Config) validate() field.List {
	var errs field.List
	if c.TrustDomain == "" {
		errs.Add(errors.New("is required"), "trust_domain")
	} else if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		errs.Add(err, "trust_domain")
	}
	badTD := len(errs) > 0
	errs = append(errs, c.validatePaths()...)
	errs = append(errs, c.validateSVID()...)
	errs = append(errs, c.validateCA()...)
	errs = append(errs, c.Kubernetes.validate().Prefix("kubernetes")...)
	errs = append(errs, c.Federation.validate().Prefix("federation")...)
	errs = append(errs, c.Limits.validate().Prefix("limits")...)
	errs = append(errs, c.OIDC.validate(c).Prefix("oidc")...)
	errs = append(errs, c.SDS.validate().Prefix("sds")...)
	if badTD {
		return errs // rules cannot be checked without a trust domain
	}
	return append(errs, c.validateRules()...)
}

// validatePaths checks where the agent listens and keeps its state.
func (c *Config) validatePaths() field.List {
	var errs field.List
	errs.Add(field.Absolute(c.SocketPath), "socket_path")
	errs.Add(field.Absolute(c.AdminSocketPath), "admin_socket_path")
	if c.SocketPath == c.AdminSocketPath {
		errs.Add(errors.New("must differ from socket_path"), "admin_socket_path")
	}
	errs.Add(field.Absolute(c.DataDir), "data_dir")
	errs.Add(field.HostPort(c.HealthAddr), "health_addr")
	if c.Debug.PProf && !loopback(c.HealthAddr) {
		errs.Add(errors.New("needs health_addr on loopback (127.0.0.1, ::1 or localhost): profiles are for whoever can log in to the node"), "debug", "pprof")
	}
	errs.Add(field.OneOf(c.Log.Level, "debug", "info", "warn", "error"), "log", "level")
	errs.Add(field.OneOf(c.Log.Format, "text", "json"), "log", "format")
	return errs
}

// validateSVID checks the svid and rotation sections.
func (c *Config) validateSVID() field.List {
	var errs field.List
	errs.Add(field.Duration(c.SVID.TTL, registry.MinTTL, registry.MaxTTL), "svid", "ttl")
	errs.Add(c.SVID.KeyType.Validate(), "svid", "key_type")
	errs.Add(field.Duration(c.SVID.IdleTimeout, time.Minute, 24*time.Hour), "svid", "idle_timeout")
	errs.Add(field.Duration(c.SVID.JWTTTL, 30*time.Second, 24*time.Hour), "svid", "jwt_ttl")
	errs.Add(field.Int(c.Rotation.MaxConcurrent, 1, 1000), "rotation", "max_concurrent")
	if c.Rotation.MaxPerSecond < 0 {
		errs.Add(errors.New("must not be negative"), "rotation", "max_per_second")
	}
	errs.Add(field.Duration(c.Rotation.Spread(), 0, time.Minute), "rotation", "reissue_spread")
	return errs
}

// validateCA checks the chosen backend's section with the backend's own
// Validate, plus what only the whole file can tell.
func (c *Config) validateCA() field.List {
	var errs field.List
	switch c.CA.Type {
	case "local":
		errs = section(c.CA.Local.Validate(), "ca", "local")
		if c.CA.Local.TTL < 6*c.SVID.TTL {
			errs.Add(fmt.Errorf("%v must be at least six times svid.ttl (%v), so a new CA signs full-length SVIDs", c.CA.Local.TTL, c.SVID.TTL), "ca", "local", "ttl")
		}
	case "vault":
		errs = section(c.CA.Vault.Validate(), "ca", "vault")
	case "stepca":
		errs = section(c.CA.StepCA.Validate(), "ca", "stepca")
	default:
		errs.Add(fmt.Errorf("unknown CA type %q (want local, vault or stepca)", c.CA.Type), "ca", "type")
	}
	return errs
}

// section returns a backend's validation error as the file's field errors
// under prefix; an error that names no field is the section's.
func section(err error, prefix ...string) field.List {
	var l field.List
	if errors.As(err, &l) {
		return l.Prefix(prefix...)
	}
	l.Add(err, prefix...)
	return l
}

func (k Kubernetes) validate() field.List {
	var errs field.List
	if !k.Enabled {
		if k.ClusterSPIFFEIDs.Enabled {
			errs.Add(errors.New("needs kubernetes.enabled: true (identities from ClusterSPIFFEID objects are for pods)"), "cluster_spiffeids", "enabled")
		}
		return errs
	}
	errs = append(errs, k.ClusterSPIFFEIDs.validate(k.PodSource).Prefix("cluster_spiffeids")...)
	if k.NodeName == "" {
		errs.Add(errors.New("is required (or set NODE_NAME from the downward API)"), "node_name")
	}
	errs.Add(field.OneOf(k.PodSource, "apiserver", "kubelet"), "pod_source")
	errs.Add(field.Absolute(k.ProcRoot), "proc_root")
	if k.PodSource == "kubelet" {
		errs.Add(field.HTTPS(k.Kubelet.URL), "kubelet", "url")
		errs.Add(field.Duration(k.Kubelet.CacheTTL, 100*time.Millisecond, time.Minute), "kubelet", "cache_ttl")
	}
	return errs
}

func (f *Federation) validate() field.List {
	var errs field.List
	if e := f.BundleEndpoint; e.Listen != "" {
		errs.Add(field.HostPort(e.Listen), "bundle_endpoint", "listen")
		errs.Add(field.OneOf(e.Profile, "https_spiffe", "https_web"), "bundle_endpoint", "profile")
		if e.Profile == "https_web" && (e.CertFile == "" || e.KeyFile == "") {
			errs.Add(errors.New("https_web needs cert_file and key_file"), "bundle_endpoint", "profile")
		}
		errs.Add(field.Duration(e.RefreshHint, time.Second, 24*time.Hour), "bundle_endpoint", "refresh_hint")
	}
	seen := map[string]bool{}
	for i, t := range f.TrustDomains {
		if _, err := spiffeid.TrustDomainFromString(t.TrustDomain); err == nil {
			if seen[t.TrustDomain] {
				errs.Add(errors.New("is listed twice"), "trust_domains", strconv.Itoa(i), "trust_domain")
			}
			seen[t.TrustDomain] = true
		}
		errs = append(errs, t.validate().Prefix("trust_domains", strconv.Itoa(i))...)
	}
	return errs
}

func (t FederatedTD) validate() field.List {
	var errs field.List
	td, err := spiffeid.TrustDomainFromString(t.TrustDomain)
	if err != nil {
		errs.Add(err, "trust_domain")
		return errs
	}
	errs.Add(field.HTTPS(t.URL), "url")
	errs.Add(field.OneOf(t.Profile, "https_spiffe", "https_web"), "profile")
	if t.Profile == "https_spiffe" {
		id, err := spiffeid.FromString(t.EndpointSPIFFEID)
		switch {
		case err != nil:
			errs.Add(fmt.Errorf("https_spiffe needs the endpoint's SPIFFE ID: %w", err), "endpoint_spiffe_id")
		case id.TrustDomain() != td:
			errs.Add(fmt.Errorf("%s is not in %s", id, td), "endpoint_spiffe_id")
		}
		if t.BundleFile == "" {
			errs.Add(errors.New("https_spiffe needs a bootstrap bundle to authenticate the endpoint"), "bundle_file")
		}
	}
	return errs
}

// validateRules checks that every rule compiles, that hints are unique and
// that each federates_with names a federated trust domain.
func (c *Config) validateRules() field.List {
	var errs field.List
	federated := map[string]bool{}
	for _, f := range c.Federation.TrustDomains {
		federated[f.TrustDomain] = true
	}
	hints := map[string]int{}
	for i, r := range c.Rules {
		at := func(path ...string) []string { return append([]string{"rules", strconv.Itoa(i)}, path...) }
		// The Workload API requires each SVID's hint to be unique; two
		// rules with one hint could both apply to a workload.
		if r.Hint != "" {
			if first, ok := hints[r.Hint]; ok {
				errs.Add(fmt.Errorf("%q is already the hint of rules[%d]; hints must be unique (the Workload API requires it)", r.Hint, first), at("hint")...)
			} else {
				hints[r.Hint] = i
			}
		}
		for j, td := range r.FederatesWith {
			if !federated[td] {
				errs.Add(fmt.Errorf("%q is not in federation.trust_domains", td), at("federates_with", strconv.Itoa(j))...)
			}
		}
		_, err := registry.Compile(c.TrustDomainID(), c.SVID.TTL, registry.Rule(r))
		var fe *registry.FieldError
		if errors.As(err, &fe) {
			path := at(fe.Field)
			if fe.Index >= 0 {
				path = append(path, strconv.Itoa(fe.Index))
			}
			errs.Add(fe.Err, path...)
		} else {
			errs.Add(err, at()...)
		}
	}
	return errs
}

// validate refuses SDS names that collide with each other or with the
// names SDS gives SVIDs and bundles by themselves (SPIFFE IDs).
func (s SDS) validate() field.List {
	var errs field.List
	seen := map[string]string{}
	for _, f := range []struct{ name, value string }{
		{"default_svid_name", s.DefaultSVIDName}, {"default_bundle_name", s.DefaultBundleName}, {"default_all_bundles_name", s.DefaultAllBundlesName},
	} {
		switch {
		case strings.HasPrefix(f.value, "spiffe://"):
			errs.Add(fmt.Errorf("%q is a SPIFFE ID, the name SDS already gives that SVID or bundle; choose a plain name", f.value), f.name)
		case seen[f.value] != "":
			errs.Add(fmt.Errorf("%q is also sds.%s; each name must stand for one thing", f.value, seen[f.value]), f.name)
		default:
			seen[f.value] = f.name
		}
	}
	return errs
}

// loopback reports whether addr's host is a loopback address or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c ClusterSPIFFEIDs) validate(podSource string) field.List {
	var errs field.List
	if !c.Enabled {
		return nil
	}
	if podSource != "apiserver" {
		errs.Add(errors.New("needs kubernetes.pod_source: apiserver (the agent watches the objects, namespaces and its pods there)"), "enabled")
	}
	for i, expr := range c.IgnoreNamespaces {
		if _, err := namespacePattern(expr); err != nil {
			errs.Add(err, "ignore_namespaces", strconv.Itoa(i))
		}
	}
	if c.StatusDelay != nil {
		errs.Add(field.Duration(*c.StatusDelay, 0, 5*time.Minute), "status_delay")
	}
	return errs
}
