package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/cmd/sworn/proxy"
	"github.com/sworn-id/sworn/trust"
)

type proxyOptions struct {
	listen       string
	target       string
	allow        []string
	deny         []string
	allowHTTP    []string
	policyFile   string
	client       bool
	http         bool
	workloadAPI  string
	fetchTimeout time.Duration
	drainTimeout time.Duration
	metricsAddr  string
	logLevel     string
}

func newProxyCommand() *cobra.Command {
	o := &proxyOptions{}
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "An mTLS sidecar that admits only allow-listed SPIFFE IDs",
		Long: `Run an mTLS proxy with this process's SVID from the Workload API.

Server mode (default): terminate mTLS on --listen, admit only peers the policy
allows (a refused peer fails the handshake and the target never sees a byte),
forward the plain stream to --target.
  sworn proxy --listen :8443 --target 127.0.0.1:8080 --allow 'spiffe://td/ns/web/**'

Client mode: take plain connections on --listen and dial --target over mTLS,
refusing a server the policy does not allow.
  sworn proxy --client --listen 127.0.0.1:9000 --target db.internal:8443 --allow spiffe://td/ns/db/sa/postgres

HTTP mode: also decide each request by peer, method and path, and pass the
verified peer to the backend in X-Forwarded-Client-Cert.
  sworn proxy --http --listen :8443 --target 127.0.0.1:8080 \
    --allow-http 'spiffe://td/ns/web/sa/frontend GET,HEAD /api/orders/*'

Patterns: spiffe://td (whole trust domain), exact IDs, * for one path
segment, ** (last) for the rest. --deny wins over --allow; no allow admits
nobody. --policy FILE (YAML: allow, deny, http) is reloaded when it changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "", "address to listen on (required)")
	f.StringVar(&o.target, "target", "", "address to forward to (required)")
	f.StringArrayVar(&o.allow, "allow", nil, "SPIFFE ID pattern to admit (repeatable)")
	f.StringArrayVar(&o.allow, "allow-uri", nil, "alias of --allow, as in ghostunnel")
	f.StringArrayVar(&o.deny, "deny", nil, "SPIFFE ID pattern to refuse, winning over --allow (repeatable)")
	f.StringArrayVar(&o.allowHTTP, "allow-http", nil, "HTTP mode: \"PATTERN METHODS PATH\" to admit (repeatable; METHODS may be *, PATH may end in *)")
	f.StringVar(&o.policyFile, "policy", "", "YAML policy file (allow, deny, http), reloaded on change")
	f.BoolVar(&o.client, "client", false, "client mode: plain in, mTLS out")
	f.BoolVar(&o.http, "http", false, "HTTP mode: per-request authorization and X-Forwarded-Client-Cert")
	f.StringVar(&o.workloadAPI, "workload-api", "", "Workload API address (default $SPIFFE_ENDPOINT_SOCKET, else the agent's default socket)")
	f.StringVar(&o.workloadAPI, "use-workload-api-addr", "", "alias of --workload-api, as in ghostunnel")
	f.DurationVar(&o.fetchTimeout, "fetch-timeout", 30*time.Second, "how long to wait for the first SVID")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 10*time.Second, "how long open connections get at shutdown")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics here (off by default)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// flagPolicy is the policy the flags give.
func (o *proxyOptions) flagPolicy() (*trust.Policy, error) {
	p, err := trust.NewPolicy(o.allow, o.deny)
	if err != nil {
		return nil, err
	}
	for _, s := range o.allowHTTP {
		r, err := trust.ParseHTTPRule(s)
		if err != nil {
			return nil, err
		}
		p = p.WithHTTPRules(r)
	}
	return p, nil
}

func (o *proxyOptions) validate() error {
	switch {
	case o.listen == "" || o.target == "":
		return errors.New("--listen and --target are required")
	case o.client && o.http:
		return errors.New("--client and --http exclude each other (HTTP mode is server side)")
	case len(o.allowHTTP) > 0 && !o.http:
		return errors.New("--allow-http needs --http")
	}
	return nil
}

func (o *proxyOptions) run(cmd *cobra.Command) error {
	if err := o.validate(); err != nil {
		return err
	}
	flags, err := o.flagPolicy()
	if err != nil {
		return err
	}
	pol := flags
	if o.policyFile != "" {
		file, err := trust.LoadPolicy(o.policyFile)
		if err != nil {
			return err
		}
		pol = flags.Merge(file)
	}
	log, err := newLogger(cmd.ErrOrStderr(), o.logLevel, "text")
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	addr := (&workloadFlags{socket: o.workloadAPI}).address()

	// The first fetch gets a deadline: without one a proxy started before
	// its agent, or for a process no rule matches, would hang silently.
	fetchCtx, cancel := context.WithTimeout(ctx, o.fetchTimeout)
	src, err := workloadapi.NewX509Source(fetchCtx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	cancel()
	if err != nil {
		return fmt.Errorf("no SVID from the Workload API at %s within %s (is the agent running, and does a rule match this process?): %w", addr, o.fetchTimeout, err)
	}
	defer src.Close()

	var opts []trust.GuardOption
	opts = append(opts, trust.WithObserver(func(d trust.Decision) {
		log.Debug("peer decision", "peer", d.ID.String(), "allowed", d.Allowed, "rule", d.Rule)
	}))
	mode := proxy.ModeServer
	switch {
	case o.client:
		mode = proxy.ModeClient
	case o.http:
		mode = proxy.ModeHTTP
		opts = append(opts, trust.ForHTTP())
	}
	guard := trust.NewGuard(pol, opts...)
	if o.policyFile != "" {
		go trust.WatchPolicyFile(ctx, o.policyFile, time.Second, func(file *trust.Policy) {
			guard.SetPolicy(flags.Merge(file))
			log.Info("policy reloaded", "file", o.policyFile)
		}, func(err error) {
			log.Error("policy reload refused; the current policy stays", "error", err)
		})
	}

	reg := prometheus.NewRegistry()
	metrics := proxy.NewMetrics(reg)
	if o.metricsAddr != "" {
		ml, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		msrv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = msrv.Serve(ml) }()
		defer msrv.Close()
	}

	p, err := proxy.New(proxy.Config{Mode: mode, Target: o.target, Source: src, Guard: guard, DrainTimeout: o.drainTimeout, Logger: log, Metrics: metrics})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	svid, _ := src.GetX509SVID()
	log.Info("sworn proxy serving", "mode", mode, "listen", l.Addr().String(), "target", o.target, "spiffe_id", svid.ID.String())
	return p.Serve(ctx, l)
}
