package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca"
)

// Admin performs operator tasks on a PKI mount with the operator's own
// Vault client (VAULT_ADDR, VAULT_TOKEN), like the vault CLI.
type Admin struct {
	c     *client
	Mount string
	Role  string
	Now   func() time.Time
}

// NewAdmin returns an Admin for mount and role ("" for the defaults).
func NewAdmin(apiClient *api.Client, mount, role string) *Admin {
	if mount == "" {
		mount = DefaultPKIMount
	}
	if role == "" {
		role = DefaultRole
	}
	cfg := &Config{Auth: Auth{Method: AuthToken}, Logger: slog.New(slog.DiscardHandler)}
	return &Admin{c: &client{cfg: cfg, api: apiClient, relogged: make(chan struct{})}, Mount: mount, Role: role, Now: time.Now}
}

// SetupOptions configures Setup.
type SetupOptions struct {
	TrustDomain spiffeid.TrustDomain
	// RootTTL is the lifetime of a root created by Setup or Rotate.
	RootTTL time.Duration
	// MaxSVIDTTL caps SVID lifetimes (the role's max_ttl).
	MaxSVIDTTL time.Duration
	// AllowedDNSDomains lets rules put DNS names under these domains in
	// SVIDs; none by default.
	AllowedDNSDomains []string
	// Policy is the name of the agents' policy.
	Policy string
	// Intermediate also grants agents root/sign-intermediate.
	Intermediate bool
	// AuthMethod, if set (approle, kubernetes, jwt), creates an auth role
	// named AuthRole at AuthMount bound to the policy.
	AuthMethod string
	AuthMount  string
	AuthRole   string
	// BoundServiceAccount is namespace/name, for kubernetes and jwt roles.
	BoundServiceAccount string
	// Audience bound by kubernetes and jwt roles.
	Audience string
	// TokenTTL of tokens the auth role issues.
	TokenTTL time.Duration
	// KubernetesHost, KubernetesCACert and KubernetesReviewerJWT configure
	// the kubernetes auth method: the API server Vault sends TokenReviews
	// to, the CA (PEM) that verifies it, and the token Vault reviews with
	// (a service account bound to system:auth-delegator; the agents' own
	// tokens are for audience "vault" and cannot authenticate a review).
	KubernetesHost        string
	KubernetesCACert      string
	KubernetesReviewerJWT string
	// JWTTransitKey, if set, creates an ecdsa-p256 key in the transit
	// engine at JWTTransitMount (default "transit") for JWT-SVIDs, and lets
	// agents sign with it and read its public keys.
	JWTTransitMount string
	JWTTransitKey   string
}

// Defaults of SetupOptions, which the sworn vault and ca commands show as
// their flags' defaults.
const (
	DefaultRootTTL    = 10 * 365 * 24 * time.Hour
	DefaultMaxSVIDTTL = 24 * time.Hour
	DefaultPolicy     = "sworn-agent"
	DefaultAuthRole   = "sworn-agent"
	DefaultTokenTTL   = time.Hour
)

func (o *SetupOptions) setDefaults() {
	if o.RootTTL == 0 {
		o.RootTTL = DefaultRootTTL
	}
	if o.MaxSVIDTTL == 0 {
		o.MaxSVIDTTL = DefaultMaxSVIDTTL
	}
	if o.Policy == "" {
		o.Policy = DefaultPolicy
	}
	if o.AuthMount == "" {
		o.AuthMount = o.AuthMethod
	}
	if o.AuthRole == "" {
		o.AuthRole = DefaultAuthRole
	}
	if o.JWTTransitMount == "" {
		o.JWTTransitMount = DefaultTransitMount
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = DefaultTokenTTL
	}
}

// Setup makes the mount ready for sworn, idempotently, and returns what it
// did, one line per step.
func (a *Admin) Setup(ctx context.Context, o SetupOptions) ([]string, error) {
	if o.TrustDomain.IsZero() {
		return nil, errors.New("vault setup: a trust domain is required")
	}
	o.setDefaults()
	mounts, err := a.c.api.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("vault setup: list mounts: %w", err)
	}
	steps := []func() ([]string, error){
		func() ([]string, error) { return a.setupMount(ctx, mounts, o) },
		func() ([]string, error) { return a.setupIssuers(ctx, o) },
		func() ([]string, error) { return a.setupRole(ctx, o) },
		func() ([]string, error) {
			if o.JWTTransitKey == "" {
				return nil, nil
			}
			line, err := a.setupTransit(ctx, mounts, o)
			return lines(line, err)
		},
		func() ([]string, error) { return a.setupPolicy(ctx, o) },
		func() ([]string, error) {
			if o.AuthMethod == "" {
				return nil, nil
			}
			return lines(a.setupAuth(ctx, o))
		},
	}
	var did []string
	for _, step := range steps {
		more, err := step()
		did = append(did, more...)
		if err != nil {
			return did, err
		}
	}
	return did, nil
}

// lines turns a step's one line into Setup's list; a failed step adds none.
func lines(line string, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	return []string{line}, nil
}

// setupMount enables the PKI engine at a.Mount, or tunes the one there.
func (a *Admin) setupMount(ctx context.Context, mounts map[string]*api.MountOutput, o SetupOptions) ([]string, error) {
	sys := a.c.api.Sys()
	maxLease := dur(o.RootTTL)
	switch m, ok := mounts[a.Mount+"/"]; {
	case !ok:
		if err := sys.MountWithContext(ctx, a.Mount, &api.MountInput{Type: "pki", Description: "sworn SPIFFE CA", Config: api.MountConfigInput{MaxLeaseTTL: maxLease}}); err != nil {
			return nil, fmt.Errorf("vault setup: enable pki at %s: %w", a.Mount, err)
		}
		return []string{fmt.Sprintf("enabled the PKI secrets engine at %s/", a.Mount)}, nil
	case m.Type != "pki":
		return nil, fmt.Errorf("vault setup: %s/ is a %s mount, not pki", a.Mount, m.Type)
	default:
		if err := sys.TuneMountAllowNilWithContext(ctx, a.Mount, api.TuneMountConfigInput{MaxLeaseTTL: &maxLease}); err != nil {
			return nil, fmt.Errorf("vault setup: tune %s: %w", a.Mount, err)
		}
		return []string{fmt.Sprintf("PKI secrets engine already at %s/; max lease TTL set to %s", a.Mount, maxLease)}, nil
	}
}

// setupIssuers creates a root unless the mount has an issuer, and makes
// every issuer cap leaf lifetimes at its own expiry.
func (a *Admin) setupIssuers(ctx context.Context, o SetupOptions) ([]string, error) {
	var did []string
	iss, err := issuers(ctx, a.c, a.Mount)
	if err != nil {
		return nil, fmt.Errorf("vault setup: %w", err)
	}
	if len(iss) == 0 {
		s, err := a.c.write(ctx, a.Mount+"/root/generate/internal", a.rootRequest(o))
		if err != nil {
			return nil, fmt.Errorf("vault setup: create root: %w", err)
		}
		id, _ := s.Data["issuer_id"].(string)
		did = append(did, fmt.Sprintf("created root issuer %s for %s (valid %s)", id, o.TrustDomain.IDString(), o.RootTTL))
		if iss, err = issuers(ctx, a.c, a.Mount); err != nil {
			return did, fmt.Errorf("vault setup: %w", err)
		}
	} else {
		did = append(did, fmt.Sprintf("using the %d existing issuer(s) of %s/", len(iss), a.Mount))
	}
	for _, i := range iss {
		if err := a.truncateLeaves(ctx, i.ID); err != nil {
			return did, err
		}
	}
	return append(did, "issuers cap leaf lifetimes at their own expiry (leaf_not_after_behavior=truncate)"), nil
}

// setupRole writes the role agents sign with.
func (a *Admin) setupRole(ctx context.Context, o SetupOptions) ([]string, error) {
	if _, err := a.c.write(ctx, a.Mount+"/roles/"+a.Role, roleRequest(o)); err != nil {
		return nil, fmt.Errorf("vault setup: write role: %w", err)
	}
	return []string{fmt.Sprintf("wrote role %s/roles/%s: URI SANs %s/*, serverAuth+clientAuth, no CN, not stored, max TTL %s",
		a.Mount, a.Role, o.TrustDomain.IDString(), o.MaxSVIDTTL)}, nil
}

// setupPolicy writes the agents' least-privilege policy, with the transit
// paths when JWT-SVIDs are on.
func (a *Admin) setupPolicy(ctx context.Context, o SetupOptions) ([]string, error) {
	policy := AgentPolicy(a.Mount, a.Role, o.Intermediate)
	if o.JWTTransitKey != "" {
		policy += fmt.Sprintf(`# JWT-SVIDs: sign with the shared transit key and read its public keys.
path "%[1]s/sign/%[2]s/sha2-256" {
  capabilities = ["update"]
}
path "%[1]s/keys/%[2]s" {
  capabilities = ["read"]
}
`, o.JWTTransitMount, o.JWTTransitKey)
	}
	if err := a.c.api.Sys().PutPolicyWithContext(ctx, o.Policy, policy); err != nil {
		return nil, fmt.Errorf("vault setup: write policy: %w", err)
	}
	return []string{fmt.Sprintf("wrote policy %s (sign with the role, read issuers%s)", o.Policy, map[bool]string{true: ", sign intermediates", false: ""}[o.Intermediate])}, nil
}

func (a *Admin) rootRequest(o SetupOptions) map[string]any {
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	name := "sworn-" + a.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(suffix[:])
	return map[string]any{
		"common_name":           "sworn root " + o.TrustDomain.Name() + " " + a.Now().UTC().Format("2006-01-02"),
		"issuer_name":           name,
		"ttl":                   dur(o.RootTTL),
		"key_type":              "ec",
		"key_bits":              256,
		"uri_sans":              o.TrustDomain.IDString(),
		"permitted_uri_domains": o.TrustDomain.Name(),
		"exclude_cn_from_sans":  true,
	}
}

func roleRequest(o SetupOptions) map[string]any {
	r := map[string]any{
		"allowed_uri_sans":                   o.TrustDomain.IDString() + "/*",
		"allow_any_name":                     false,
		"allow_localhost":                    false,
		"allow_ip_sans":                      false,
		"enforce_hostnames":                  true,
		"require_cn":                         false,
		"use_csr_common_name":                false,
		"use_csr_sans":                       false,
		"server_flag":                        true,
		"client_flag":                        true,
		"code_signing_flag":                  false,
		"email_protection_flag":              false,
		"key_usage":                          []string{"DigitalSignature"},
		"ext_key_usage":                      []string{},
		"basic_constraints_valid_for_non_ca": true,
		"no_store":                           true,
		"generate_lease":                     false,
		"key_type":                           "any",
		"ttl":                                "1h",
		"max_ttl":                            dur(o.MaxSVIDTTL),
		"not_before_duration":                "30s",
		"issuer_ref":                         "default",
	}
	if len(o.AllowedDNSDomains) > 0 {
		r["allowed_domains"] = o.AllowedDNSDomains
		r["allow_bare_domains"] = true
		r["allow_subdomains"] = true
	}
	return r
}

// AgentPolicy is the least-privilege policy for agents: sign with the role
// and read the issuers; with intermediate, also sign intermediates.
func AgentPolicy(mount, role string, intermediate bool) string {
	p := fmt.Sprintf(`# sworn agents: sign X.509-SVIDs and read the trust bundle.
path "%[1]s/sign/%[2]s" {
  capabilities = ["create", "update"]
}
path "%[1]s/issuers" {
  capabilities = ["list"]
}
path "%[1]s/issuer/+/json" {
  capabilities = ["read"]
}
path "%[1]s/config/issuers" {
  capabilities = ["read"]
}
`, mount, role)
	if intermediate {
		p += fmt.Sprintf(`# Intermediate mode: each agent holds a short-lived intermediate CA.
path "%s/root/sign-intermediate" {
  capabilities = ["create", "update"]
}
`, mount)
	}
	return p
}

func (a *Admin) setupAuth(ctx context.Context, o SetupOptions) (string, error) {
	sys := a.c.api.Sys()
	auths, err := sys.ListAuthWithContext(ctx)
	if err != nil {
		return "", fmt.Errorf("vault setup: list auth methods: %w", err)
	}
	enabled := ""
	if _, ok := auths[o.AuthMount+"/"]; !ok {
		if err := sys.EnableAuthWithOptionsWithContext(ctx, o.AuthMount, &api.EnableAuthOptions{Type: o.AuthMethod}); err != nil {
			return "", fmt.Errorf("vault setup: enable %s auth: %w", o.AuthMethod, err)
		}
		enabled = fmt.Sprintf("enabled %s auth at %s/; ", o.AuthMethod, o.AuthMount)
	}
	role := map[string]any{"token_policies": []string{o.Policy}, "token_ttl": dur(o.TokenTTL), "token_max_ttl": dur(4 * o.TokenTTL)}
	switch o.AuthMethod {
	case AuthAppRole:
		role["secret_id_ttl"] = "0"
	case AuthKubernetes, AuthJWT:
		ns, name, ok := strings.Cut(o.BoundServiceAccount, "/")
		if !ok || ns == "" || name == "" {
			return "", fmt.Errorf("vault setup: %s auth needs --bound-service-account NAMESPACE/NAME", o.AuthMethod)
		}
		if o.AuthMethod == AuthKubernetes {
			role["bound_service_account_names"] = []string{name}
			role["bound_service_account_namespaces"] = []string{ns}
			if o.Audience != "" {
				role["audience"] = o.Audience
			}
		} else {
			role["role_type"] = "jwt"
			role["user_claim"] = "sub"
			role["bound_subject"] = "system:serviceaccount:" + ns + ":" + name
			role["bound_audiences"] = []string{o.Audience}
		}
	default:
		return "", fmt.Errorf("vault setup: auth method %q: want approle, kubernetes or jwt", o.AuthMethod)
	}
	configured := ""
	if o.AuthMethod == AuthKubernetes && o.KubernetesHost != "" {
		if _, err := a.c.write(ctx, "auth/"+o.AuthMount+"/config", map[string]any{
			"kubernetes_host":      o.KubernetesHost,
			"kubernetes_ca_cert":   o.KubernetesCACert,
			"token_reviewer_jwt":   o.KubernetesReviewerJWT,
			"disable_local_ca_jwt": true,
		}); err != nil {
			return "", fmt.Errorf("vault setup: configure kubernetes auth: %w", err)
		}
		configured = fmt.Sprintf("kubernetes auth reviews tokens at %s; ", o.KubernetesHost)
	}
	if _, err := a.c.write(ctx, "auth/"+o.AuthMount+"/role/"+o.AuthRole, role); err != nil {
		return "", fmt.Errorf("vault setup: write %s role: %w", o.AuthMethod, err)
	}
	return fmt.Sprintf("%s%swrote %s role %s bound to policy %s", enabled, configured, o.AuthMethod, o.AuthRole, o.Policy), nil
}

func (a *Admin) setupTransit(ctx context.Context, mounts map[string]*api.MountOutput, o SetupOptions) (string, error) {
	did := ""
	if _, ok := mounts[o.JWTTransitMount+"/"]; !ok {
		if err := a.c.api.Sys().MountWithContext(ctx, o.JWTTransitMount, &api.MountInput{Type: "transit", Description: "sworn JWT-SVID keys"}); err != nil {
			return "", fmt.Errorf("vault setup: enable transit at %s: %w", o.JWTTransitMount, err)
		}
		did = fmt.Sprintf("enabled the transit engine at %s/; ", o.JWTTransitMount)
	}
	path := o.JWTTransitMount + "/keys/" + o.JWTTransitKey
	existing, err := a.c.read(ctx, path)
	if err != nil {
		return "", fmt.Errorf("vault setup: read transit key: %w", err)
	}
	if existing == nil {
		if _, err := a.c.write(ctx, path, map[string]any{"type": "ecdsa-p256", "exportable": false}); err != nil {
			return "", fmt.Errorf("vault setup: create transit key: %w", err)
		}
		return did + fmt.Sprintf("created transit key %s (ecdsa-p256) for JWT-SVIDs", path), nil
	}
	if typ, _ := existing.Data["type"].(string); typ != "ecdsa-p256" {
		return "", fmt.Errorf("vault setup: transit key %s is %q, want ecdsa-p256", path, typ)
	}
	return did + fmt.Sprintf("using transit key %s for JWT-SVIDs", path), nil
}

func (a *Admin) truncateLeaves(ctx context.Context, id string) error {
	_, err := a.c.api.Logical().JSONMergePatch(ctx, a.Mount+"/issuer/"+id, map[string]any{"leaf_not_after_behavior": "truncate"})
	if err != nil {
		return fmt.Errorf("vault: issuer %s: set leaf_not_after_behavior: %w", id, err)
	}
	return nil
}

// Issuers lists the mount's issuers, oldest first.
func (a *Admin) Issuers(ctx context.Context) ([]Issuer, error) {
	return issuers(ctx, a.c, a.Mount)
}

// Rotate creates a new root issuer that is trusted (every agent publishes
// it at its next bundle refresh) but does not sign until Activate.
func (a *Admin) Rotate(ctx context.Context, td spiffeid.TrustDomain, ttl time.Duration) (Issuer, error) {
	before, err := issuers(ctx, a.c, a.Mount)
	if err != nil {
		return Issuer{}, err
	}
	o := SetupOptions{TrustDomain: td, RootTTL: ttl}
	o.setDefaults()
	s, err := a.c.write(ctx, a.Mount+"/issuers/generate/root/internal", a.rootRequest(o))
	if err != nil {
		return Issuer{}, fmt.Errorf("vault: create issuer: %w", err)
	}
	id, _ := s.Data["issuer_id"].(string)
	for _, i := range before {
		if i.Default {
			// Generating an issuer must not move the default; make sure.
			if err := a.setDefault(ctx, i.ID); err != nil {
				return Issuer{}, err
			}
		}
	}
	if err := a.truncateLeaves(ctx, id); err != nil {
		return Issuer{}, err
	}
	return a.find(ctx, id)
}

// Activate makes issuer ref the default (signing) issuer. It refuses an
// issuer published less than minAge ago, so agents have had time to put it
// in every bundle. The previous default can no longer issue, and the time
// it stopped is recorded in its name for Retire.
func (a *Admin) Activate(ctx context.Context, ref string, minAge time.Duration) (Issuer, error) {
	iss, target, err := a.issuer(ctx, ref)
	if err != nil {
		return Issuer{}, err
	}
	if target.Default {
		return target, nil
	}
	if age := a.Now().Sub(target.Certificate.NotBefore); age < minAge {
		return Issuer{}, fmt.Errorf("vault: %w: issuer %s was published %s ago; wait until %s so every agent trusts it (or lower --min-age)",
			ca.ErrInvalidRequest, target.ID, age.Round(time.Second), target.Certificate.NotBefore.Add(minAge).Format(time.RFC3339))
	}
	if err := a.setDefault(ctx, target.ID); err != nil {
		return Issuer{}, err
	}
	now := a.Now().Unix()
	for _, i := range iss {
		if !i.Default {
			continue
		}
		name := stripOldMark(i.Name) + "-" + oldMark + strconv.FormatInt(now, 10)
		_, err := a.c.api.Logical().JSONMergePatch(ctx, a.Mount+"/issuer/"+i.ID, map[string]any{
			"usage":       "read-only,crl-signing,ocsp-signing",
			"issuer_name": strings.TrimPrefix(name, "-"),
		})
		if err != nil {
			return Issuer{}, fmt.Errorf("vault: retire issuer %s from signing: %w", i.ID, err)
		}
	}
	return a.find(ctx, target.ID)
}

// Retire deletes issuer ref from the mount. It refuses while an SVID it
// signed could still be valid: until its last use as the signing issuer
// plus the role's max TTL, or its own expiry if that comes first. force
// skips the check.
func (a *Admin) Retire(ctx context.Context, ref string, force bool) (Issuer, error) {
	_, target, err := a.issuer(ctx, ref)
	if err != nil {
		return Issuer{}, err
	}
	if target.Default {
		return Issuer{}, fmt.Errorf("vault: %w: issuer %s signs now; activate another one first", ca.ErrInvalidRequest, target.ID)
	}
	if !force {
		until, err := a.validUntil(ctx, target)
		if err != nil {
			return Issuer{}, err
		}
		if a.Now().Before(until) {
			return Issuer{}, fmt.Errorf("vault: %w: SVIDs issuer %s signed may be valid until %s; retire it after that (or --force)",
				ca.ErrInvalidRequest, target.ID, until.Format(time.RFC3339))
		}
	}
	if _, err := a.c.api.Logical().DeleteWithContext(ctx, a.Mount+"/issuer/"+target.ID); err != nil {
		return Issuer{}, fmt.Errorf("vault: delete issuer %s: %w", target.ID, err)
	}
	return target, nil
}

// validUntil is when the last SVID the issuer may have signed expires.
func (a *Admin) validUntil(ctx context.Context, i Issuer) (time.Time, error) {
	mark := retiredMark(i.Name)
	if mark == "" {
		// No record of when it last signed (it was never active through
		// `sworn ca activate`): only its own expiry bounds its SVIDs.
		return i.Certificate.NotAfter, nil
	}
	secs, _ := strconv.ParseInt(mark, 10, 64)
	role, err := a.c.read(ctx, a.Mount+"/roles/"+a.Role)
	if err != nil {
		return time.Time{}, fmt.Errorf("vault: read role %s: %w", a.Role, err)
	}
	maxTTL := 24 * time.Hour
	if role != nil {
		if n, err := parseSeconds(role.Data["max_ttl"]); err == nil && n > 0 {
			maxTTL = time.Duration(n) * time.Second
		}
	}
	until := time.Unix(secs, 0).Add(maxTTL)
	if i.Certificate.NotAfter.Before(until) {
		until = i.Certificate.NotAfter
	}
	return until, nil
}

func parseSeconds(v any) (int64, error) {
	switch n := v.(type) {
	case int64:
		return n, nil
	case float64:
		return int64(n), nil
	case string:
		return strconv.ParseInt(n, 10, 64)
	case interface{ Int64() (int64, error) }:
		return n.Int64()
	}
	return 0, fmt.Errorf("not a number: %v", v)
}

// oldMark precedes the unix time Activate records in the name of the
// issuer it stopped from signing. Names written before sworn called such
// an issuer "old" carry legacyOldMark; both are read.
const (
	oldMark       = "old-since-"
	legacyOldMark = "retired-"
)

// retiredMark returns the unix time Activate recorded in an issuer's name.
func retiredMark(name string) string {
	mark, _ := oldMarkAt(name)
	return mark
}

// stripOldMark is name without the mark a previous Activate left.
func stripOldMark(name string) string {
	if _, at := oldMarkAt(name); at >= 0 {
		return strings.TrimSuffix(name[:at], "-")
	}
	return name
}

// oldMarkAt returns the unix time Activate recorded in an issuer's name
// and where its mark starts; -1 when the name has none.
func oldMarkAt(name string) (mark string, at int) {
	for _, m := range []string{oldMark, legacyOldMark} {
		i := strings.LastIndex(name, m)
		if i < 0 {
			continue
		}
		if _, err := strconv.ParseInt(name[i+len(m):], 10, 64); err == nil {
			return name[i+len(m):], i
		}
	}
	return "", -1
}

// issuer returns every issuer and the one ref names (ID or name).
func (a *Admin) issuer(ctx context.Context, ref string) ([]Issuer, Issuer, error) {
	iss, err := issuers(ctx, a.c, a.Mount)
	if err != nil {
		return nil, Issuer{}, err
	}
	target, ok := lookup(iss, ref)
	if !ok {
		return nil, Issuer{}, fmt.Errorf("vault: %w: no issuer %q in %s/", ca.ErrInvalidRequest, ref, a.Mount)
	}
	return iss, target, nil
}

func (a *Admin) setDefault(ctx context.Context, id string) error {
	if _, err := a.c.write(ctx, a.Mount+"/config/issuers", map[string]any{"default": id}); err != nil {
		return fmt.Errorf("vault: set default issuer: %w", err)
	}
	return nil
}

func (a *Admin) find(ctx context.Context, id string) (Issuer, error) {
	iss, err := issuers(ctx, a.c, a.Mount)
	if err != nil {
		return Issuer{}, err
	}
	if i, ok := lookup(iss, id); ok {
		return i, nil
	}
	return Issuer{}, fmt.Errorf("vault: issuer %s vanished", id)
}

func lookup(iss []Issuer, ref string) (Issuer, bool) {
	for _, i := range iss {
		if i.ID == ref || (ref != "" && i.Name == ref) {
			return i, true
		}
	}
	return Issuer{}, false
}

func dur(d time.Duration) string { return strconv.FormatInt(int64(d.Seconds()), 10) + "s" }
