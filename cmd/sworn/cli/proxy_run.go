package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/cmd/sworn/proxy"
	"github.com/sworn-id/sworn/trust"
)

// policy is the policy in force at start: the flags', merged with the
// --policy file's. A policy that admits nobody is refused unless
// --allow-none says it is meant.
func (o *proxyOptions) policy() (flags, pol *trust.Policy, err error) {
	flags, err = o.flagPolicy()
	if err != nil {
		return nil, nil, err
	}
	pol = flags
	if o.policyFile != "" {
		file, err := trust.LoadPolicy(o.policyFile)
		if err != nil {
			return nil, nil, err
		}
		pol = flags.Merge(file)
	}
	if pol.AdmitsNobody() && !o.allowNone {
		return nil, nil, errAdmitsNobody
	}
	return flags, pol, nil
}

func (o *proxyOptions) run(cmd *cobra.Command) error {
	if err := o.validate(cmd); err != nil {
		return err
	}
	flags, pol, err := o.policy()
	if err != nil {
		return err
	}
	log, err := newLogger(cmd.ErrOrStderr(), o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	src, err := o.source(ctx, log)
	if err != nil {
		return err
	}
	defer src.Close()

	mode, guard := o.guard(pol, log)
	if o.policyFile != "" {
		go trust.WatchPolicyFile(ctx, o.policyFile, time.Second, func(file *trust.Policy) {
			guard.SetPolicy(flags.Merge(file))
			log.Info("policy reloaded", "file", o.policyFile)
		}, func(err error) {
			log.Error("policy reload refused; the current policy stays", "error", err)
		})
	}
	reg := prometheus.NewRegistry()
	p, err := proxy.New(proxy.Config{Mode: mode, Target: o.target, Source: src, Guard: guard, HandshakeTimeout: o.connectTimeout,
		DrainTimeout: o.drainTimeout, Logger: log, Metrics: proxy.NewMetrics(reg)})
	if err != nil {
		return err
	}
	stop, err := o.serveSide(p, reg, log)
	defer stop()
	if err != nil {
		return err
	}
	sockMode, _ := o.mode() // validated
	l, err := proxy.Listen(o.listen, sockMode)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	svid, _ := src.GetX509SVID()
	log.Info("sworn proxy serving", "mode", mode, "listen", l.Addr().String(), "target", o.target, "spiffe_id", svid.ID.String(),
		"svid_expires_at", svid.Certificates[0].NotAfter)
	return p.Serve(ctx, l)
}

// source opens the Workload API. The first fetch gets a deadline: without
// one a proxy started before its agent, or for a process no rule matches,
// would hang silently.
func (o *proxyOptions) source(ctx context.Context, log *slog.Logger) (*workloadapi.X509Source, error) {
	addr := (&workloadFlags{socket: o.workloadAPI}).address()
	fetchCtx, cancel := context.WithTimeout(ctx, o.fetchTimeout)
	defer cancel()
	src, err := workloadapi.NewX509Source(fetchCtx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr), workloadapi.WithLogger(spiffeLogger{log})))
	if err != nil {
		return nil, fmt.Errorf("no SVID from the Workload API at %s within %s (is the agent running, and does a rule match this process?): %w", addr, o.fetchTimeout, err)
	}
	return src, nil
}

// guard is the mode and the guard that enforces pol in it.
func (o *proxyOptions) guard(pol *trust.Policy, log *slog.Logger) (proxy.Mode, *trust.Guard) {
	opts := []trust.GuardOption{trust.WithObserver(func(d trust.Decision) {
		log.Debug("peer decision", "peer", d.ID.String(), "allowed", d.Allowed, "rule", d.Rule)
	})}
	mode := proxy.ModeServer
	switch {
	case o.client:
		mode = proxy.ModeClient
	case o.http:
		mode = proxy.ModeHTTP
		opts = append(opts, trust.ForHTTP())
	}
	return mode, trust.NewGuard(pol, opts...)
}

// serveSide starts the --status and --metrics-addr servers (one server
// when both name the same address); stop closes them.
func (o *proxyOptions) serveSide(p *proxy.Proxy, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	var servers []*http.Server
	stop = func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}
	sockMode, _ := o.mode()
	serve := func(flag, addr string, h http.Handler) error {
		l, err := proxy.Listen(addr, sockMode)
		if err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		// net/http's own errors (a panic, a bad write) go to the
		// structured log, not to the standard logger's stderr lines.
		s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		servers = append(servers, s)
		go func() {
			if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("side server stopped", "flag", flag, "error", err)
			}
		}()
		return nil
	}
	if o.status != "" {
		if err := serve("--status", o.status, p.StatusHandler(reg)); err != nil {
			return stop, err
		}
	}
	if o.metricsAddr != "" && o.metricsAddr != o.status {
		if err := serve("--metrics-addr", o.metricsAddr, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})); err != nil {
			return stop, err
		}
	}
	return stop, nil
}
