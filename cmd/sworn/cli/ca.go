package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
)

// Where `sworn ca` acts: the agent's embedded CA through its admin socket,
// or Vault's PKI mount with the operator's Vault token.
const (
	backendAuto  = "auto"
	backendLocal = "local"
	backendVault = "vault"
)

// caOptions are the flags every `sworn ca` command shares.
type caOptions struct {
	adminFlags
	vaultFlags
	backend string
	output  outputFormat
}

func (o *caOptions) add(cmd *cobra.Command) {
	o.adminFlags.add(cmd)
	o.vaultFlags.add(cmd)
	cmd.Flags().StringVar(&o.backend, "backend", backendAuto, "local (the agent's embedded CA, through --admin-socket), vault (VAULT_ADDR, VAULT_TOKEN), or auto: vault when VAULT_ADDR is set")
	addOutputFlag(cmd, &o.output)
}

// resolve says which backend the command acts on.
func (o *caOptions) resolve() (string, error) {
	switch o.backend {
	case backendLocal, backendVault:
		return o.backend, nil
	case backendAuto:
		if os.Getenv("VAULT_ADDR") != "" {
			return backendVault, nil
		}
		return backendLocal, nil
	}
	return "", fmt.Errorf("--backend %q: want local, vault or auto", o.backend)
}

// caEntry is one CA in `sworn ca` JSON output.
type caEntry struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"` // Vault's issuer name
	State     ca.State  `json:"state"`          // prepared, active or old
	Subject   string    `json:"subject,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// caReport is what every `sworn ca` command prints: the backend and the
// CAs it lists or changed.
type caReport struct {
	Backend string    `json:"backend"`
	CAs     []caEntry `json:"cas"`
	// Message is the text output's last line: what happened and what next.
	Message string `json:"message,omitempty"`
}

func (r caReport) print(w io.Writer, format outputFormat) error {
	if format == jsonOutput {
		return writeJSON(w, r)
	}
	if len(r.CAs) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CA ID\tNAME\tSTATE\tNOT BEFORE\tNOT AFTER")
		for _, c := range r.CAs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, orDash(c.Name), c.State,
				c.NotBefore.Local().Format(time.RFC3339), c.NotAfter.Local().Format(time.RFC3339))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if r.Message != "" {
		_, err := fmt.Fprintln(w, r.Message)
		return err
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func localEntry(c *adminpb.CA) caEntry {
	return caEntry{ID: c.GetId(), State: ca.State(c.GetState()), Subject: c.GetSubject(),
		NotBefore: c.GetNotBefore().AsTime(), NotAfter: c.GetNotAfter().AsTime()}
}

// vaultEntries states each issuer as the agents see it (ca/vault's
// DescribeCAs): the default issuer signs, one sworn ca activate
// replaced is old, any other is prepared.
func vaultEntries(iss []vault.Issuer) []caEntry {
	signing, _ := vault.Signing(iss)
	out := make([]caEntry, 0, len(iss))
	for _, i := range iss {
		state := ca.StatePrepared
		switch {
		case i.Default:
			state = ca.StateActive
		case i.Old(signing):
			state = ca.StateOld
		}
		out = append(out, caEntry{ID: i.ID, Name: i.Name, State: state, Subject: i.Certificate.Subject.String(),
			NotBefore: i.Certificate.NotBefore, NotAfter: i.Certificate.NotAfter})
	}
	return out
}

func newCACommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Show and rotate the CA: status, rotate, activate, retire",
		Long: `Show and rotate the CA that signs SVIDs, for every backend: the agent's embedded
CA (through its admin socket, as root) or Vault's PKI mount (with the operator's
VAULT_ADDR and VAULT_TOKEN). --backend auto picks Vault when VAULT_ADDR is set.

A rotation has three steps. rotate publishes a new CA: every agent trusts it,
nothing is signed with it. activate makes it sign; agents re-issue every SVID
and the previous CA becomes old: still trusted, signing nothing. retire removes
an old CA from trust, once no SVID it signed can still be valid.

States: prepared (trusted, not signing yet), active (signing), old (trusted,
no longer signing). -o json prints {"backend", "cas": [{"id", "name", "state",
"subject", "not_before", "not_after"}], "message"}.`,
	}
	cmd.AddCommand(newCAStatusCommand(), newCARotateCommand(), newCAActivateCommand(), newCARetireCommand())
	return cmd
}

// run resolves the backend and runs the matching function, printing what
// it reports.
func (o *caOptions) run(cmd *cobra.Command, local func(context.Context, adminpb.AdminClient) (caReport, error), onVault func(*vault.Admin) (caReport, error)) error {
	backend, err := o.resolve()
	if err != nil {
		return err
	}
	var r caReport
	if backend == backendVault {
		admin, err := o.admin()
		if err != nil {
			return err
		}
		if r, err = onVault(admin); err != nil {
			return err
		}
	} else {
		err := o.call(cmd, func(ctx context.Context, c adminpb.AdminClient) error {
			var err error
			r, err = local(ctx, c)
			return err
		})
		if err != nil {
			return err
		}
	}
	r.Backend = backend
	return r.print(cmd.OutOrStdout(), o.output)
}

func localStatus(ctx context.Context, c adminpb.AdminClient) (caReport, error) {
	st, err := c.GetStatus(ctx, &adminpb.GetStatusRequest{})
	if err != nil {
		return caReport{}, fmt.Errorf("ca status: %w", err)
	}
	r := caReport{CAs: []caEntry{}}
	for _, c := range st.GetCas() {
		r.CAs = append(r.CAs, localEntry(c))
	}
	return r, nil
}

func newCAStatusCommand() *cobra.Command {
	o := &caOptions{}
	status := &cobra.Command{
		Use:   "status",
		Short: "List the CAs: which one signs, which are prepared or old",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, localStatus, func(admin *vault.Admin) (caReport, error) {
				iss, err := admin.Issuers(cmd.Context())
				if err != nil {
					return caReport{}, err
				}
				return caReport{CAs: vaultEntries(iss)}, nil
			})
		},
	}
	o.add(status)
	return status
}

type caRotateOptions struct {
	caOptions
	trustDomain string
	ttl         time.Duration
}

func newCARotateCommand() *cobra.Command {
	o := &caRotateOptions{}
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Publish a new CA that every agent trusts but that does not sign yet",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, func(ctx context.Context, c adminpb.AdminClient) (caReport, error) {
				return localRotate(ctx, c, false)
			}, func(admin *vault.Admin) (caReport, error) {
				if o.trustDomain == "" {
					return caReport{}, errors.New("--trust-domain is required with Vault: the new root's URI SAN names it")
				}
				td, err := spiffeid.TrustDomainFromString(o.trustDomain)
				if err != nil {
					return caReport{}, fmt.Errorf("--trust-domain: %w", err)
				}
				i, err := admin.Rotate(cmd.Context(), td, o.ttl)
				if err != nil {
					return caReport{}, err
				}
				return caReport{CAs: vaultEntries([]vault.Issuer{i}),
					Message: fmt.Sprintf("created issuer %s; agents add it to every bundle at their next refresh.\nActivate it with: sworn ca activate %s", i.ID, i.ID)}, nil
			})
		},
	}
	o.add(rotate)
	rotate.Flags().StringVar(&o.trustDomain, "trust-domain", "", "Vault: the trust domain (required)")
	rotate.Flags().DurationVar(&o.ttl, "ttl", vault.DefaultRootTTL, "Vault: lifetime of the new root")
	return rotate
}

// localRotate publishes the embedded CA's successor or activates it.
func localRotate(ctx context.Context, c adminpb.AdminClient, activate bool) (caReport, error) {
	resp, err := c.RotateCA(ctx, &adminpb.RotateCARequest{Activate: activate})
	if err != nil {
		return caReport{}, fmt.Errorf("rotate ca: %w", err)
	}
	e := localEntry(resp.GetCa())
	msg := fmt.Sprintf("CA %s is prepared: in every bundle now, signing nothing.\nActivate it with: sworn ca activate %s", e.ID, e.ID)
	if activate {
		msg = fmt.Sprintf("CA %s is active: every SVID is being re-issued; the previous CA stays trusted until it expires", e.ID)
	}
	return caReport{CAs: []caEntry{e}, Message: msg}, nil
}

func newCAActivateCommand() *cobra.Command {
	o := &caOptions{}
	var minAge time.Duration
	activate := &cobra.Command{
		Use:   "activate [CA-ID]",
		Short: "Make the prepared CA sign; agents re-issue every SVID",
		Long: `Make a prepared CA the signing one; agents re-issue every SVID with it.
With Vault the issuer ID is required and must have been published for --min-age.
The embedded CA has at most one prepared CA; an ID, if given, must be its.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, c adminpb.AdminClient) (caReport, error) {
				if len(args) == 1 {
					if err := preparedIs(ctx, c, args[0]); err != nil {
						return caReport{}, err
					}
				}
				return localRotate(ctx, c, true)
			}, func(admin *vault.Admin) (caReport, error) {
				if len(args) == 0 {
					return caReport{}, errors.New("give the issuer to activate: sworn ca status lists them")
				}
				i, err := admin.Activate(cmd.Context(), args[0], minAge)
				if err != nil {
					return caReport{}, err
				}
				return caReport{CAs: vaultEntries([]vault.Issuer{i}),
					Message: fmt.Sprintf("issuer %s now signs; the previous one can no longer issue and stays trusted (old) until it is retired", i.ID)}, nil
			})
		},
	}
	o.add(activate)
	// 2m: twice the agents' default bundle_refresh, twice over, so an agent
	// whose last refresh failed has still fetched the issuer.
	activate.Flags().DurationVar(&minAge, "min-age", 4*vault.DefaultBundleRefresh, "Vault: refuse an issuer published more recently than this (at least twice the agents' bundle_refresh)")
	return activate
}

// preparedIs refuses to activate when the embedded CA's prepared CA is not
// id: the operator meant another rotation than the one pending.
func preparedIs(ctx context.Context, c adminpb.AdminClient, id string) error {
	r, err := localStatus(ctx, c)
	if err != nil {
		return err
	}
	for _, e := range r.CAs {
		if e.State == ca.StatePrepared {
			if e.ID == id {
				return nil
			}
			return fmt.Errorf("CA %s is not the prepared one (%s is); nothing was activated", id, e.ID)
		}
	}
	return fmt.Errorf("no CA is prepared, so %s cannot be activated: publish one with sworn ca rotate first", id)
}

func newCARetireCommand() *cobra.Command {
	o := &caOptions{}
	var force bool
	retire := &cobra.Command{
		Use:   "retire CA-ID",
		Short: "Remove an old CA from trust, refused while SVIDs it signed may still be valid",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(context.Context, adminpb.AdminClient) (caReport, error) {
				return caReport{}, errors.New("the embedded CA retires an old CA by itself: it stays trusted until its own NotAfter (sworn ca status shows it) and is then dropped from the bundle and the data dir; it cannot be removed earlier")
			}, func(admin *vault.Admin) (caReport, error) {
				i, err := admin.Retire(cmd.Context(), args[0], force)
				if err != nil {
					return caReport{}, err
				}
				return caReport{CAs: []caEntry{}, Message: fmt.Sprintf("retired issuer %s; agents drop it from their bundles at the next refresh", i.ID)}, nil
			})
		},
	}
	o.add(retire)
	retire.Flags().BoolVar(&force, "force", false, "Vault: retire even though SVIDs it signed may still be valid")
	return retire
}
