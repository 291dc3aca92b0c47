package workload

import (
	"context"
	"crypto"
	"encoding/json"
	"slices"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sworn-id/sworn/agent/cache"
)

// JWTSource hands out JWT-SVIDs.
type JWTSource interface {
	Get(ctx context.Context, who cache.Requester, id spiffeid.ID, audience []string) (string, error)
}

// Bounds of a JWT-SVID request's audiences. Real audiences are a handful of
// service names or URLs; these sit far above that and far below what would
// let one call make the agent sign and cache megabytes.
const (
	MaxAudiences     = 32
	MaxAudienceLen   = 2048
	MaxAudienceBytes = 16 << 10
)

// checkAudience enforces the audience bounds, with a message that states
// the limit broken.
func checkAudience(aud []string) error {
	if len(aud) == 0 {
		return status.Error(codes.InvalidArgument, "audience must be specified")
	}
	if len(aud) > MaxAudiences {
		return status.Errorf(codes.InvalidArgument, "%d audiences given; at most %d are allowed", len(aud), MaxAudiences)
	}
	total := 0
	for i, a := range aud {
		switch {
		case a == "":
			return status.Errorf(codes.InvalidArgument, "audience[%d] is empty", i)
		case len(a) > MaxAudienceLen:
			return status.Errorf(codes.InvalidArgument, "audience[%d] is %d bytes long; at most %d are allowed", i, len(a), MaxAudienceLen)
		}
		total += len(a)
	}
	if total > MaxAudienceBytes {
		return status.Errorf(codes.InvalidArgument, "audiences total %d bytes; at most %d are allowed", total, MaxAudienceBytes)
	}
	return nil
}

// FetchJWTSVID returns a JWT-SVID for each of the caller's identities, or
// for the one it names.
func (s *Server) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (resp *workload.JWTSVIDResponse, err error) {
	defer s.count("FetchJWTSVID", &err)
	c, err := s.attest(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkAudience(req.GetAudience()); err != nil {
		return nil, err
	}
	if s.cfg.JWT == nil {
		return nil, status.Error(codes.Unimplemented, "this agent's CA issues no JWT-SVIDs")
	}
	var want spiffeid.ID
	if raw := req.GetSpiffeId(); raw != "" {
		if want, err = spiffeid.FromString(raw); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "spiffe_id: %v", err)
		}
	}
	who := cache.Requester{PID: c.PID, UID: c.UID}
	resp = &workload.JWTSVIDResponse{}
	seen := map[spiffeid.ID]bool{}
	for _, e := range s.match(c) {
		if seen[e.ID] || (!want.IsZero() && e.ID != want) {
			continue
		}
		seen[e.ID] = true
		token, err := s.cfg.JWT.Get(ctx, who, e.ID, req.GetAudience())
		if err != nil {
			return nil, s.issueError(err)
		}
		resp.Svids = append(resp.Svids, &workload.JWTSVID{SpiffeId: e.ID.String(), Svid: token, Hint: e.Hint})
	}
	if len(resp.Svids) == 0 {
		if !want.IsZero() {
			return nil, status.Errorf(codes.PermissionDenied, "caller does not hold %s", want)
		}
		return nil, errNoIdentity
	}
	return resp, nil
}

// FetchJWTBundles streams the JWT bundles (JWKS) a caller with an identity
// trusts.
func (s *Server) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream grpc.ServerStreamingServer[workload.JWTBundlesResponse]) (err error) {
	defer s.track("FetchJWTBundles")(&err)
	return s.streamBundles(stream.Context(), func(fed map[spiffeid.TrustDomain]bool) error {
		resp := &workload.JWTBundlesResponse{Bundles: map[string][]byte{}}
		for td, b := range s.cfg.Bundles.Snapshot().JWT {
			if !s.visible(td, fed) {
				continue
			}
			jwks, err := marshalJWKS(b)
			if err != nil {
				return status.Error(codes.Internal, "cannot encode JWT bundle")
			}
			resp.Bundles[td.IDString()] = jwks
		}
		return stream.Send(resp)
	})
}

// marshalJWKS encodes a bundle's public keys as a JWKS, each with its kid
// and use "jwt-svid".
func marshalJWKS(b *jwtbundle.Bundle) ([]byte, error) {
	keys := b.JWTAuthorities()
	kids := make([]string, 0, len(keys))
	for kid := range keys {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	set := jose.JSONWebKeySet{}
	for _, kid := range kids {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: crypto.PublicKey(keys[kid]), KeyID: kid, Use: "jwt-svid"})
	}
	return json.Marshal(set)
}

// ValidateJWTSVID checks a token against the bundle of its own trust domain.
func (s *Server) ValidateJWTSVID(ctx context.Context, req *workload.ValidateJWTSVIDRequest) (resp *workload.ValidateJWTSVIDResponse, err error) {
	defer s.count("ValidateJWTSVID", &err)
	if err := checkHeader(ctx); err != nil {
		return nil, err
	}
	switch {
	case req.GetAudience() == "":
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	case req.GetSvid() == "":
		return nil, status.Error(codes.InvalidArgument, "svid must be specified")
	}
	// go-spiffe picks the bundle by the token's subject, so a key of trust
	// domain B never validates a token claiming A, and allows only the
	// RS/ES/PS algorithms (never none or HS*).
	svid, err := jwtsvid.ParseAndValidate(req.GetSvid(), s.cfg.Bundles.Snapshot().JWTSet(), []string{req.GetAudience()})
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid JWT-SVID: %v", err)
	}
	claims, err := structpb.NewStruct(svid.Claims)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "claims: %v", err)
	}
	return &workload.ValidateJWTSVIDResponse{SpiffeId: svid.ID.String(), Claims: claims}, nil
}
