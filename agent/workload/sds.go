package workload

import (
	"context"
	"crypto/rand"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/registry"
)

// Default SDS resource names, as SPIRE's agent names them, so Envoy and
// Istio configurations written for SPIRE work unchanged.
const (
	DefaultSVIDName       = "default"
	DefaultBundleName     = "ROOTCA"
	DefaultAllBundlesName = "ALL"
)

// SecretTypeURL is the type of every resource SDS sends.
const SecretTypeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// spiffeValidatorName is Envoy's SPIFFE certificate validator extension.
const spiffeValidatorName = "envoy.tls.cert_validator.spiffe"

// SDSNames are the resource names that stand for the caller's first SVID,
// its own trust domain's bundle and every bundle it may see.
type SDSNames struct {
	DefaultSVID, DefaultBundle, AllBundles string
}

func (n SDSNames) withDefaults() SDSNames {
	if n.DefaultSVID == "" {
		n.DefaultSVID = DefaultSVIDName
	}
	if n.DefaultBundle == "" {
		n.DefaultBundle = DefaultBundleName
	}
	if n.AllBundles == "" {
		n.AllBundles = DefaultAllBundlesName
	}
	return n
}

// RegisterSDS adds Envoy's Secret Discovery Service (v3) to g, on the same
// socket and with the same attestation as the Workload API.
func (s *Server) RegisterSDS(g *grpc.Server) {
	secretv3.RegisterSecretDiscoveryServiceServer(g, &sdsServer{s: s, names: s.cfg.SDS.withDefaults()})
}

type sdsServer struct {
	secretv3.UnimplementedSecretDiscoveryServiceServer
	s       *Server
	names   SDSNames
	secrets sdsSecrets // built once, shared by every stream that asks
}

// DeltaSecrets is not served, as SPIRE does not: Envoy falls back to
// StreamSecrets.
func (*sdsServer) DeltaSecrets(secretv3.SecretDiscoveryService_DeltaSecretsServer) error {
	return status.Error(codes.Unimplemented, "DeltaSecrets is not served; use StreamSecrets (Envoy's default for SDS)")
}

// sdsView is what one SDS response is built from: the caller's SVIDs (its
// first is its default) and the foreign trust domains it federates with.
type sdsView struct {
	svids []*cache.SVID
	fed   map[spiffeid.TrustDomain]bool
}

// FetchSecrets answers one request with the caller's current secrets.
func (d *sdsServer) FetchSecrets(ctx context.Context, req *discoveryv3.DiscoveryRequest) (resp *discoveryv3.DiscoveryResponse, err error) {
	defer d.s.track("FetchSecrets")(&err)
	c, entries, err := d.s.attestAndMatch(ctx, d.s.attestCaller)
	if err != nil {
		return nil, err
	}
	sub, err := d.s.cfg.Cache.Subscribe(ctx, entries, cache.Requester{PID: c.PID, UID: c.UID})
	if err != nil {
		return nil, d.s.issueError(err)
	}
	defer sub.Close()
	return d.response(req, sdsView{svids: sub.SVIDs(), fed: federatedWith(entries)}, "")
}

// StreamSecrets follows the xDS protocol: the first response as soon as
// the caller is attested and has asked; a new version and nonce on every
// SVID rotation, bundle change or rule reload; a request carrying the
// nonce last sent is an ACK (nothing is sent) or, with error_detail, a NACK
// (logged); a request with an older nonce is stale and ignored; a changed
// resource list is answered at once.
func (d *sdsServer) StreamSecrets(stream secretv3.SecretDiscoveryService_StreamSecretsServer) (err error) {
	defer d.s.track("StreamSecrets")(&err)
	ctx := stream.Context()
	c, entries, err := d.s.attestAndMatch(ctx, d.s.attestCaller)
	if err != nil {
		return err
	}
	who := cache.Requester{PID: c.PID, UID: c.UID}
	sub, err := d.s.cfg.Cache.Subscribe(ctx, entries, who)
	if err != nil {
		return d.s.issueError(err)
	}
	defer sub.Close()
	d.s.cfg.Metrics.SDSStreams.Inc()
	defer d.s.cfg.Metrics.SDSStreams.Dec()

	reqs := make(chan *discoveryv3.DiscoveryRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	st := &sdsStream{d: d, c: c, version: 1}
	for {
		rulesChanged := d.s.cfg.Registry.Changed()
		bundlesChanged := d.s.cfg.Bundles.Changed()
		send := false
		select {
		case <-ctx.Done():
			return nil
		case <-d.s.done:
			return nil
		case err := <-recvErr:
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		case req := <-reqs:
			send = st.request(req)
		case <-sub.Updates():
			send = st.changed()
		case <-bundlesChanged:
			send = st.changed()
		case <-rulesChanged:
			// Attested again, as SDS attests (no security header): the new
			// rules may need what the attestor skipped.
			if st.c, entries, err = d.s.attestAndMatch(ctx, d.s.attestCaller); err != nil {
				return err
			}
			if err := sub.Update(ctx, entries, who); err != nil {
				return d.s.issueError(err)
			}
			send = st.changed()
		}
		if send {
			if err := st.send(stream, sdsView{svids: sub.SVIDs(), fed: federatedWith(entries)}); err != nil {
				return err
			}
		}
	}
}

// sdsStream is the xDS state of one StreamSecrets call.
type sdsStream struct {
	d       *sdsServer
	c       caller
	last    *discoveryv3.DiscoveryRequest // the request answered; nil before the first
	version int                           // of what the next response sends
	nonce   string                        // of the last response sent
	sent    bool                          // whether version has been sent
}

// request takes a request from Envoy and reports whether to answer it.
func (st *sdsStream) request(req *discoveryv3.DiscoveryRequest) bool {
	log := st.d.s.cfg.Logger
	if st.nonce != "" && req.GetResponseNonce() != st.nonce {
		// An answer to an older response, sent before Envoy saw ours.
		log.Debug("ignoring an SDS request with a stale nonce", "pid", st.c.PID, "nonce", req.GetResponseNonce(), "want", st.nonce)
		return false
	}
	if detail := req.GetErrorDetail(); detail != nil {
		st.d.s.cfg.Metrics.SDSNacks.Inc()
		log.Error("Envoy rejected the secrets sent (NACK)", "pid", st.c.PID, "uid", st.c.UID,
			"resources", req.GetResourceNames(), "version", req.GetVersionInfo(), "error", detail.GetMessage())
	}
	changed := st.last == nil || !sameNames(st.last.GetResourceNames(), req.GetResourceNames())
	st.last = req
	return changed
}

// changed records that what the caller holds has changed, and reports
// whether there is a request to answer with it.
func (st *sdsStream) changed() bool {
	if st.sent {
		st.version++
		st.sent = false
	}
	return st.last != nil
}

// send answers the last request with view, under a new nonce. Every send
// after the first re-checks the caller, as the Workload API does.
func (st *sdsStream) send(stream secretv3.SecretDiscoveryService_StreamSecretsServer, view sdsView) error {
	if st.nonce != "" {
		if err := st.d.s.reverify(st.c); err != nil {
			return err
		}
	}
	resp, err := st.d.response(st.last, view, strconv.Itoa(st.version))
	if err != nil {
		return err
	}
	if err := stream.Send(resp); err != nil {
		return err
	}
	st.d.s.cfg.Metrics.SDSPushes.Inc()
	st.nonce, st.sent = resp.GetNonce(), true
	return nil
}

func sameNames(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// response builds the secrets req names from view: an empty list is every
// secret the caller holds; a name it does not hold is an error naming it.
// version is empty for FetchSecrets, which gets no nonce.
func (d *sdsServer) response(req *discoveryv3.DiscoveryRequest, view sdsView, version string) (*discoveryv3.DiscoveryResponse, error) {
	want := map[string]bool{}
	for _, n := range req.GetResourceNames() {
		if n != "" {
			want[n] = true
		}
	}
	all := len(want) == 0
	resp := &discoveryv3.DiscoveryResponse{TypeUrl: SecretTypeURL, VersionInfo: version}
	if version != "" {
		resp.Nonce = newNonce()
	}
	add := func(name string, secret *anypb.Any) {
		resp.Resources = append(resp.Resources, secret)
		delete(want, name)
	}
	now := d.s.cfg.Clock.Now()
	for i, svid := range view.svids {
		var names []string
		if id := svid.Entry.ID.String(); all || want[id] {
			names = append(names, id)
		}
		if i == 0 && want[d.names.DefaultSVID] {
			names = append(names, d.names.DefaultSVID)
		}
		for _, name := range names {
			secret, err := d.secrets.certificate(svid, name, now)
			if err != nil {
				return nil, status.Errorf(codes.Internal, "encoding secret %s: %v", name, err)
			}
			add(name, secret)
		}
	}
	if all || len(want) > 0 { // a stream that asked only for SVIDs needs no bundle work
		if err := d.addBundles(req, view, all, want, add); err != nil {
			return nil, err
		}
	}
	if len(want) > 0 {
		names := slices.Sorted(func(yield func(string) bool) {
			for n := range want {
				if !yield(n) {
					return
				}
			}
		})
		return nil, status.Errorf(codes.InvalidArgument, "the caller holds no secret named %q (it may ask for its SPIFFE IDs, the trust domains it trusts, %q, %q or %q)",
			names, d.names.DefaultSVID, d.names.DefaultBundle, d.names.AllBundles)
	}
	return resp, nil
}

// addBundles adds the validation contexts want names (all of them if all):
// each trust domain the caller may see by its ID, its own as the default
// bundle name, and every one in a single SPIFFE validator config.
func (d *sdsServer) addBundles(req *discoveryv3.DiscoveryRequest, view sdsView, all bool, want map[string]bool, add func(string, *anypb.Any)) error {
	spiffe := spiffeValidation(req.GetNode())
	ders := d.s.currentDERs()
	visible := map[spiffeid.TrustDomain][]byte{}
	for td, der := range ders.der {
		if d.s.visible(td, view.fed) {
			visible[td] = der
		}
	}
	addContext := func(name string, spiffe bool, tds ...spiffeid.TrustDomain) error {
		secret, err := d.secrets.validation(ders, name, spiffe, tds)
		if err != nil {
			return status.Errorf(codes.Internal, "building secret %s: %v", name, err)
		}
		add(name, secret)
		return nil
	}
	tds := slices.SortedFunc(func(yield func(spiffeid.TrustDomain) bool) {
		for td := range visible {
			if !yield(td) {
				return
			}
		}
	}, func(a, b spiffeid.TrustDomain) int { return strings.Compare(a.Name(), b.Name()) })
	for _, td := range tds {
		if all || want[td.IDString()] {
			if err := addContext(td.IDString(), spiffe, td); err != nil {
				return err
			}
		}
	}
	if own := d.s.cfg.TrustDomain; want[d.names.DefaultBundle] && visible[own] != nil {
		if err := addContext(d.names.DefaultBundle, spiffe, own); err != nil {
			return err
		}
	}
	if want[d.names.AllBundles] {
		if !spiffe {
			return status.Errorf(codes.InvalidArgument, "%q is every trust bundle in one SPIFFE certificate validator, which needs Envoy 1.18 or later with SPIFFE validation on (node metadata disable_spiffe_cert_validation is set, or the user agent is older)", d.names.AllBundles)
		}
		if err := addContext(d.names.AllBundles, true, tds...); err != nil {
			return err
		}
	}
	return nil
}

// spiffeValidation reports whether node can take the SPIFFE certificate
// validator: Envoy 1.18 or later that has not turned it off.
func spiffeValidation(node *corev3.Node) bool {
	if v := node.GetMetadata().GetFields()["disable_spiffe_cert_validation"]; v.GetBoolValue() {
		return false
	}
	bv := node.GetUserAgentBuildVersion().GetVersion()
	if bv == nil {
		return false
	}
	return bv.GetMajorNumber() > 1 || bv.GetMajorNumber() == 1 && bv.GetMinorNumber() >= 18
}

// validationContext is the bundles of tds as a SPIFFE certificate
// validator config, or, with spiffe off, the first one's as trusted_ca.
func validationContext(spiffe bool, bundles map[spiffeid.TrustDomain][]byte, tds []spiffeid.TrustDomain) (*tlsv3.Secret, error) {
	if !spiffe {
		return &tlsv3.Secret{Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(pemCertificates(bundles[tds[0]])),
		}}}, nil
	}
	cfg := &tlsv3.SPIFFECertValidatorConfig{}
	for _, td := range tds {
		cfg.TrustDomains = append(cfg.TrustDomains, &tlsv3.SPIFFECertValidatorConfig_TrustDomain{
			Name: td.Name(), TrustBundle: inline(pemCertificates(bundles[td])),
		})
	}
	typed, err := anypb.New(cfg)
	if err != nil {
		return nil, err
	}
	return &tlsv3.Secret{Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		CustomValidatorConfig: &corev3.TypedExtensionConfig{Name: spiffeValidatorName, TypedConfig: typed},
	}}}, nil
}

// tlsCertificate is svid's chain and PKCS#8 key as inline PEM.
func tlsCertificate(svid *cache.SVID) *tlsv3.TlsCertificate {
	return &tlsv3.TlsCertificate{
		CertificateChain: inline(pemCertificates(svid.ChainDER)),
		PrivateKey:       inline(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: svid.KeyDER})),
	}
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

// pemCertificates is concatenated DER certificates as PEM.
func pemCertificates(der []byte) []byte {
	var out []byte
	for len(der) > 0 {
		var cert asn1.RawValue
		rest, err := asn1.Unmarshal(der, &cert)
		if err != nil {
			break // cannot happen: the DER came from parsed certificates
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.FullBytes})...)
		der = rest
	}
	return out
}

func newNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// attestAndMatch attests the caller with attestFn and matches it to its
// entries; a caller with none gets PermissionDenied.
func (s *Server) attestAndMatch(ctx context.Context, attestFn func(context.Context) (caller, error)) (caller, []registry.Entry, error) {
	c, err := attestFn(ctx)
	if err != nil {
		return caller{}, nil, err
	}
	entries := s.match(c)
	if len(entries) == 0 {
		s.cfg.Logger.Info("no identity for caller", "pid", c.PID, "uid", c.UID, "selectors", c.selectors.Strings())
		return caller{}, nil, errNoIdentity
	}
	return c, entries, nil
}
