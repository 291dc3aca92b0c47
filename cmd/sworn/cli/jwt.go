package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// jwtSVIDJSON is a JWT-SVID in -o json output: jwt fetch prints a list of
// them with the token, jwt validate one with the claims instead.
type jwtSVIDJSON struct {
	SPIFFEID  string         `json:"spiffe_id"`
	Token     string         `json:"token,omitempty"`
	Audience  []string       `json:"audience"`
	ExpiresAt time.Time      `json:"expires_at"`
	Claims    map[string]any `json:"claims,omitempty"`
}

func newJWTCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "jwt", Short: "Fetch and validate JWT-SVIDs through the Workload API"}

	fo := &workloadFlags{}
	var audience []string
	var id string
	var fout, vout outputFormat
	fetch := &cobra.Command{
		Use:   "fetch --audience A [--audience B] [--spiffe-id ID]",
		Short: "Print a JWT-SVID for each of this process's identities (or the one named)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(audience) == 0 {
				return errors.New("--audience is required")
			}
			params := jwtsvid.Params{Audience: audience[0], ExtraAudiences: audience[1:]}
			if id != "" {
				sub, err := spiffeid.FromString(id)
				if err != nil {
					return fmt.Errorf("--spiffe-id: %w", err)
				}
				params.Subject = sub
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), fo.timeout)
			defer cancel()
			svids, err := workloadapi.FetchJWTSVIDs(ctx, params, fo.clientOption())
			if err != nil {
				return fmt.Errorf("jwt fetch: %w", err)
			}
			if fout == jsonOutput {
				out := make([]jwtSVIDJSON, 0, len(svids))
				for _, s := range svids {
					out = append(out, jwtSVIDJSON{SPIFFEID: s.ID.String(), Token: s.Marshal(), Audience: s.Audience, ExpiresAt: s.Expiry})
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			for _, s := range svids {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", s.ID, s.Marshal())
			}
			return nil
		},
	}
	fo.add(fetch)
	fetch.Flags().StringArrayVar(&audience, "audience", nil, "audience of the token (repeatable)")
	fetch.Flags().StringVar(&id, "spiffe-id", "", "only this identity")
	addOutputFlag(fetch, &fout)

	vo := &workloadFlags{}
	var vaud string
	validate := &cobra.Command{
		Use:   "validate --audience A TOKEN",
		Short: "Have the agent validate a JWT-SVID and print its SPIFFE ID and claims",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), vo.timeout)
			defer cancel()
			svid, err := workloadapi.ValidateJWTSVID(ctx, args[0], vaud, vo.clientOption())
			if err != nil {
				return fmt.Errorf("jwt validate: %w", err)
			}
			if vout == jsonOutput {
				return writeJSON(cmd.OutOrStdout(), jwtSVIDJSON{SPIFFEID: svid.ID.String(), Audience: svid.Audience, ExpiresAt: svid.Expiry, Claims: svid.Claims})
			}
			claims, _ := json.MarshalIndent(svid.Claims, "", "  ")
			fmt.Fprintf(cmd.OutOrStdout(), "valid: %s\n%s\n", svid.ID, claims)
			return nil
		},
	}
	vo.add(validate)
	validate.Flags().StringVar(&vaud, "audience", "", "audience the token must carry (required)")
	_ = validate.MarkFlagRequired("audience")
	addOutputFlag(validate, &vout)

	cmd.AddCommand(fetch, validate)
	return cmd
}
