package admin

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/peer"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/ca"
)

// Cache is the part of the SVID cache the admin API drives.
type Cache interface {
	Identities() []cache.Identity
	Rotate(ids ...spiffeid.ID) int
}

// Registry matches selectors to entries and counts the rules in force.
type Registry interface {
	Match(attest.Set) ([]registry.Entry, []error)
	Len() int
}

// Config configures a Server.
type Config struct {
	Attestor    attest.Attestor
	Registry    Registry
	TrustDomain spiffeid.TrustDomain
	CAType      string
	Authority   ca.Authority
	Cache       Cache
	Started     time.Time
	// AllowedUIDs may call besides root.
	AllowedUIDs []uint32
	// SetFederatedBundle stores a federated bundle; nil refuses. Its
	// errors of class bundle.ErrInvalid are the caller's (InvalidArgument),
	// bundle.ErrNotFederated the config's (FailedPrecondition).
	SetFederatedBundle func(td spiffeid.TrustDomain, data []byte) (x509, jwt int, err error)
	// Bundles and RefreshHint are what the bundle endpoint serves from,
	// so GetBundles answers with its document; nil Bundles refuses.
	Bundles     *bundle.Store
	RefreshHint time.Duration
	Logger      *slog.Logger
}

// Server implements adminpb.AdminServer.
type Server struct {
	adminpb.UnimplementedAdminServer
	cfg Config
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg}
}

// Register adds the admin API to g, behind the caller check.
func (s *Server) Register(g *grpc.Server) { adminpb.RegisterAdminServer(g, s) }

// UnaryInterceptor refuses callers that are neither root nor allowed.
func (s *Server) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.PermissionDenied, "caller credentials unavailable")
	}
	uid := p.Caller().UID
	allowed := uid == 0
	for _, u := range s.cfg.AllowedUIDs {
		allowed = allowed || uid == u
	}
	if !allowed {
		s.cfg.Logger.Warn("refused admin call", "method", info.FullMethod, "uid", uid, "pid", p.Caller().PID)
		return nil, status.Errorf(codes.PermissionDenied, "uid %d may not use the admin API", uid)
	}
	s.cfg.Logger.Info("admin call", "method", info.FullMethod, "uid", uid, "pid", p.Caller().PID)
	return handler(ctx, req)
}

// GetStatus implements adminpb.AdminServer.
func (s *Server) GetStatus(ctx context.Context, _ *adminpb.GetStatusRequest) (*adminpb.GetStatusResponse, error) {
	resp := &adminpb.GetStatusResponse{
		TrustDomain: s.cfg.TrustDomain.Name(),
		CaType:      s.cfg.CAType,
		Started:     timestamppb.New(s.cfg.Started),
	}
	if s.cfg.Registry != nil {
		resp.Rules = int32(s.cfg.Registry.Len())
	}
	if d, ok := s.cfg.Authority.(ca.Describer); ok {
		infos, err := d.DescribeCAs(ctx)
		if err != nil {
			return nil, caStatus(err)
		}
		for _, info := range infos {
			resp.Cas = append(resp.Cas, caMessage(info))
		}
	} else {
		signing := s.cfg.Authority.Authorities()
		for _, cert := range signing.X509 {
			resp.Cas = append(resp.Cas, caMessage(ca.Info{State: "trusted", Certificate: cert}))
		}
	}
	for _, id := range s.cfg.Cache.Identities() {
		msg := &adminpb.Identity{
			SpiffeId:  id.SVID.Entry.ID.String(),
			Serial:    id.SVID.Serial,
			NotBefore: timestamppb.New(id.SVID.NotBefore),
			NotAfter:  timestamppb.New(id.SVID.NotAfter),
			Holders:   int32(id.Holders),
			DnsNames:  id.SVID.Entry.DNSNames,
		}
		if !id.NextRenewal.IsZero() {
			msg.NextRenewal = timestamppb.New(id.NextRenewal)
		}
		resp.Identities = append(resp.Identities, msg)
	}
	return resp, nil
}

// RotateSVIDs implements adminpb.AdminServer.
func (s *Server) RotateSVIDs(_ context.Context, req *adminpb.RotateSVIDsRequest) (*adminpb.RotateSVIDsResponse, error) {
	if req.GetAll() == (len(req.GetSpiffeIds()) > 0) {
		return nil, status.Error(codes.InvalidArgument, "name SPIFFE IDs or ask for all, not both or neither")
	}
	var ids []spiffeid.ID
	for _, raw := range req.GetSpiffeIds() {
		id, err := spiffeid.FromString(raw)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%q: %v", raw, err)
		}
		ids = append(ids, id)
	}
	n := s.cfg.Cache.Rotate(ids...)
	if len(ids) > 0 && n == 0 {
		return nil, status.Error(codes.NotFound, "no cached SVID has any of those SPIFFE IDs")
	}
	s.cfg.Logger.Info("SVID rotation requested", "scheduled", n, "all", req.GetAll())
	return &adminpb.RotateSVIDsResponse{Scheduled: int32(n)}, nil
}

// RotateCA implements adminpb.AdminServer.
func (s *Server) RotateCA(ctx context.Context, req *adminpb.RotateCARequest) (*adminpb.RotateCAResponse, error) {
	r, ok := s.cfg.Authority.(ca.Rotator)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "the %s CA is not rotated through the agent; use `sworn ca rotate` and `sworn ca activate` against Vault", s.cfg.CAType)
	}
	var info ca.Info
	var err error
	if req.GetActivate() {
		info, err = r.ActivateCA(ctx)
	} else {
		info, err = r.PrepareCA(ctx)
	}
	if err != nil {
		return nil, caStatus(err)
	}
	return &adminpb.RotateCAResponse{Ca: caMessage(info)}, nil
}

// Attest implements adminpb.AdminServer.
func (s *Server) Attest(ctx context.Context, req *adminpb.AttestRequest) (*adminpb.AttestResponse, error) {
	if req.GetPid() <= 0 {
		return nil, status.Error(codes.InvalidArgument, "a pid is required")
	}
	caller, err := peer.CallerOf("", req.GetPid())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "pid %d: %v", req.GetPid(), err)
	}
	resp := &adminpb.AttestResponse{Pid: caller.PID, Uid: caller.UID, Gid: caller.GID}
	// Every selector the process has, the digest included even when no
	// rule uses it: an operator writing a rule needs to see it.
	sel, err := s.cfg.Attestor.Attest(attest.WithDigest(ctx), caller)
	if err != nil {
		resp.Errors = append(resp.Errors, err.Error())
		return resp, nil
	}
	set := attest.NewSet(sel...)
	resp.Selectors = set.Strings()
	entries, errs := s.cfg.Registry.Match(set)
	for _, e := range entries {
		resp.SpiffeIds = append(resp.SpiffeIds, e.ID.String())
	}
	for _, e := range errs {
		resp.Errors = append(resp.Errors, e.Error())
	}
	return resp, nil
}

// SetFederatedBundle implements adminpb.AdminServer.
func (s *Server) SetFederatedBundle(_ context.Context, req *adminpb.SetFederatedBundleRequest) (*adminpb.SetFederatedBundleResponse, error) {
	td, err := spiffeid.TrustDomainFromString(req.GetTrustDomain())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "trust_domain: %v", err)
	}
	if td == s.cfg.TrustDomain {
		return nil, status.Error(codes.InvalidArgument, "the agent's own trust domain comes from its CA, not a file")
	}
	if s.cfg.SetFederatedBundle == nil {
		return nil, status.Error(codes.Unimplemented, "federation is not configured")
	}
	x, j, err := s.cfg.SetFederatedBundle(td, req.GetBundle())
	switch {
	case errors.Is(err, bundle.ErrInvalid):
		return nil, status.Errorf(codes.InvalidArgument, "%v; nothing changed: workloads keep the bundle they have", err)
	case errors.Is(err, bundle.ErrNotFederated):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return nil, status.Errorf(codes.Internal, "%v; nothing changed: workloads keep the bundle they have", err)
	}
	s.cfg.Logger.Info("federated bundle set", "trust_domain", td.Name(), "x509_authorities", x, "jwt_authorities", j)
	return &adminpb.SetFederatedBundleResponse{X509Authorities: int32(x), JwtAuthorities: int32(j)}, nil
}

// GetBundles implements adminpb.AdminServer. Every bundle comes from one
// snapshot, so they share its sequence number.
func (s *Server) GetBundles(context.Context, *adminpb.GetBundlesRequest) (*adminpb.GetBundlesResponse, error) {
	if s.cfg.Bundles == nil {
		return nil, status.Error(codes.Unimplemented, "this agent does not expose its bundle store")
	}
	snap := s.cfg.Bundles.Snapshot()
	tds := map[spiffeid.TrustDomain]bool{}
	for td := range snap.Bundles {
		tds[td] = true
	}
	for td := range snap.JWT {
		tds[td] = true
	}
	resp := &adminpb.GetBundlesResponse{TrustDomain: s.cfg.TrustDomain.Name()}
	for _, td := range slices.SortedFunc(maps.Keys(tds), func(a, b spiffeid.TrustDomain) int { return cmp.Compare(a.Name(), b.Name()) }) {
		b, _ := snap.SPIFFEBundle(td, s.cfg.RefreshHint)
		data, err := b.Marshal()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "bundle of %s: %v", td, err)
		}
		resp.Bundles = append(resp.Bundles, &adminpb.TrustDomainBundle{TrustDomain: td.Name(), SpiffeBundle: data})
	}
	return resp, nil
}

func caMessage(info ca.Info) *adminpb.CA {
	return &adminpb.CA{
		Id:        info.ID,
		State:     string(info.State),
		Subject:   subject(info.Certificate),
		NotBefore: timestamppb.New(info.Certificate.NotBefore),
		NotAfter:  timestamppb.New(info.Certificate.NotAfter),
	}
}

func subject(c *x509.Certificate) string {
	if len(c.URIs) > 0 {
		return fmt.Sprintf("%s (%s)", c.Subject, c.URIs[0])
	}
	return c.Subject.String()
}

func caStatus(err error) error {
	switch {
	case errors.Is(err, ca.ErrInvalidRequest):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ca.ErrNotSupported):
		return status.Error(codes.Unimplemented, err.Error())
	case errors.Is(err, ca.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
