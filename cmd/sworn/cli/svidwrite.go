package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sworn-id/sworn/trust"
)

type svidWriteOptions struct {
	workloadFlags
	dir, config                  string
	once, daemon                 bool
	exec, signal, pidFile        string
	svidName, keyName, bundleNm  string
	certMode, keyMode            string
	jwtSVIDMode, jwtBundleMode   string
	jwtSVIDs                     []string
	jwtBundleName, hint          string
	addIntermediates, unsafeMode bool
	healthAddr                   string

	// Set from --config.
	cmdArgs          []string
	includeFederated bool
	fromHelperConf   bool
}

func newSVIDWriteCommand() *cobra.Command {
	o := &svidWriteOptions{}
	cmd := &cobra.Command{
		Use:   "write --dir DIR | --config helper.conf [--daemon=false] [--exec CMD [-- ARGS...]] [--signal SIG [--pid-file F]]",
		Short: "Keep SVID, key, bundle and JWT files up to date in a directory (as spiffe-helper)",
		Long: `Write this process's SVID to DIR as svid.pem, svid_key.pem (0600) and
bundle.pem (plus federated_bundle.pem when there are federated trust domains),
JWT-SVIDs for the audiences given and the JWT bundle, each by atomic rename, and
rewrite them on every rotation (JWT-SVIDs at half their remaining life). DIR
must not be writable by group or others; a key or JWT-SVID mode readable by
them is refused unless --unsafe-key-mode.

--config helper.conf reads spiffe-helper's configuration file as it is; flags
given as well override it.
--daemon=false (or --once) writes once and exits: 0 if everything was written.
--exec CMD starts CMD (arguments after --) once the files exist; on every
rotation it is sent --signal, or restarted if no signal is given. sworn exits
with CMD's status when CMD exits (128+N if signal N killed it).
--signal SIG --pid-file F signals the process whose PID is in F on every
rotation after the first write.
SIGINT or SIGTERM stop sworn (and CMD) with status 0.`,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	o.add(cmd)
	o.addFlags(cmd)
	return cmd
}

func (o *svidWriteOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "directory to write into (required without --config)")
	f.StringVar(&o.config, "config", "", "spiffe-helper configuration file (HCL) to take settings from")
	f.BoolVar(&o.daemon, "daemon", true, "keep running and rewrite on rotation; false writes once and exits")
	f.BoolVar(&o.once, "once", false, "write once and exit (same as --daemon=false)")
	f.StringVar(&o.exec, "exec", "", "command to run, and signal or restart on rotation")
	f.StringVar(&o.signal, "signal", "", "signal to send on rotation, e.g. SIGHUP")
	f.StringVar(&o.pidFile, "pid-file", "", "file holding the PID to signal (with --signal, without --exec)")
	f.StringVar(&o.svidName, "svid-file-name", trust.SVIDFile, "file name of the certificate chain")
	f.StringVar(&o.keyName, "svid-key-file-name", trust.KeyFile, "file name of the private key")
	f.StringVar(&o.bundleNm, "svid-bundle-file-name", trust.BundleFile, "file name of the trust bundle")
	f.StringVar(&o.certMode, "cert-file-mode", "0644", "mode of the certificate and bundle files (octal)")
	f.StringVar(&o.keyMode, "key-file-mode", "0600", "mode of the key file (octal; group/other bits need --unsafe-key-mode)")
	f.StringArrayVar(&o.jwtSVIDs, "jwt-svid", nil, "AUDIENCE=FILE: keep a JWT-SVID for AUDIENCE in FILE (repeatable)")
	f.StringVar(&o.jwtSVIDMode, "jwt-svid-file-mode", "0600", "mode of JWT-SVID files (octal)")
	f.StringVar(&o.jwtBundleName, "jwt-bundle-file-name", "", "keep the JWT bundles (spiffe-helper's JSON) in this file")
	f.StringVar(&o.jwtBundleMode, "jwt-bundle-file-mode", "0600", "mode of the JWT bundle file (octal)")
	f.StringVar(&o.hint, "hint", "", "write the SVID with this hint instead of the default one")
	f.BoolVar(&o.addIntermediates, "add-intermediates-to-bundle", false, "write the leaf alone and put intermediates in the bundle")
	f.BoolVar(&o.unsafeMode, "unsafe-key-mode", false, "allow a key or JWT-SVID file mode group or others can read, or a cert or JWT bundle file mode they can write")
	f.StringVar(&o.healthAddr, "health-addr", "", "serve /live and /ready for probes on this address (e.g. :8081)")
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM, "WINCH": syscall.SIGWINCH,
}

// parseSignal accepts SIGHUP, HUP, hup or a number.
func parseSignal(s string) (syscall.Signal, error) {
	if sig, ok := signals[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return sig, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// svidWriter does one `svid write` run: it writes the plan's files and
// manages the command or PID file to tell.
type svidWriter struct {
	plan    *writePlan
	client  workloadapi.ClientOption
	exec    string
	args    []string
	sig     syscall.Signal
	pidFile string
	out     io.Writer
	status  *writeStatus
	now     func() time.Time
	after   func(time.Duration) <-chan time.Time
	cancel  context.CancelFunc
	result  chan error

	mu      sync.Mutex
	child   *child
	written bool // the X.509 files have been written once
}

func (o *svidWriteOptions) run(cmd *cobra.Command, args []string) error {
	w, healthAddr, live, ready, err := o.complete(cmd, args)
	if err != nil {
		return err
	}
	if err := prepareDir(w.plan.dir); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	w.cancel = cancel
	if !o.daemon {
		fctx, fcancel := context.WithTimeout(ctx, o.timeout)
		defer fcancel()
		return w.writeOnce(fctx)
	}
	if healthAddr != "" {
		addr, _, err := serveHealth(ctx, healthAddr, live, ready, w.status)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "health on http://%s (%s, %s)\n", addr, live, ready)
	}
	err = w.watch(ctx)
	w.stopChild()
	select {
	case childErr := <-w.result:
		return childErr
	default:
	}
	if cmd.Context().Err() != nil {
		return nil // SIGINT or SIGTERM: a clean stop
	}
	return err
}

// writeOnce writes every configured file once (--daemon=false).
func (w *svidWriter) writeOnce(ctx context.Context) error {
	if w.plan.x509() {
		c, err := workloadapi.FetchX509Context(ctx, w.client)
		if err != nil {
			return fmt.Errorf("svid write: %w", err)
		}
		if err := w.write(c); err != nil {
			return err
		}
	}
	if w.plan.jwtBundleName != "" {
		set, err := workloadapi.FetchJWTBundles(ctx, w.client)
		if err != nil {
			return fmt.Errorf("svid write: %w", err)
		}
		if err := w.writeJWTBundle(set); err != nil {
			return err
		}
	}
	for _, t := range w.plan.jwtSVIDs {
		if _, err := w.writeJWTSVID(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// watch keeps every configured file current until ctx ends; a watch that
// gives up (the agent refused the caller) ends the others.
func (w *svidWriter) watch(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	clean := func(err error) error {
		if gctx.Err() != nil || status.Code(err) == codes.Canceled {
			return nil
		}
		return err
	}
	if w.plan.x509() {
		g.Go(func() error { return clean(workloadapi.WatchX509Context(gctx, w, w.client)) })
	}
	if w.plan.jwtBundleName != "" {
		g.Go(func() error { return clean(workloadapi.WatchJWTBundles(gctx, jwtBundleWatcher{w}, w.client)) })
	}
	for _, t := range w.plan.jwtSVIDs {
		g.Go(func() error { return w.keepJWTSVID(gctx, t) })
	}
	return g.Wait()
}

func (w *svidWriter) write(c *workloadapi.X509Context) error {
	svid, err := w.plan.writeX509(c)
	if err != nil {
		return err
	}
	leaf := svid.Certificates[0]
	w.status.x509Written(leaf.NotAfter)
	fmt.Fprintf(w.out, "wrote %s (serial %s, valid until %s) to %s\n", svid.ID, leaf.SerialNumber.Text(16),
		leaf.NotAfter.Format(time.RFC3339), w.plan.dir)
	return nil
}

func (w *svidWriter) OnX509ContextUpdate(c *workloadapi.X509Context) {
	if err := w.write(c); err != nil {
		fmt.Fprintln(w.out, "error writing SVID files:", err)
		return
	}
	w.mu.Lock()
	first := !w.written
	w.written = true
	running := w.child != nil
	w.mu.Unlock()
	switch {
	case w.exec != "" && !running:
		w.startChild()
	case w.exec != "" && w.sig != 0:
		w.signalChild()
	case w.exec != "":
		w.stopChild()
		w.startChild()
	case w.pidFile != "" && !first:
		// The first write is the files the process has not read yet: it
		// starts with them, so only later rotations are signalled.
		fmt.Fprintf(w.out, "signalling the process in %s with %v\n", w.pidFile, w.sig)
		if err := signalPIDFile(w.pidFile, w.sig); err != nil {
			fmt.Fprintln(w.out, "error signalling:", err)
		}
	}
}

func (w *svidWriter) OnX509ContextWatchError(err error) {
	if !streamCancelled(err) {
		fmt.Fprintln(w.out, "watch error (retrying):", err)
	}
}

// streamCancelled says err is the end of a stream we cancelled (SIGINT,
// SIGTERM, or another watch giving up): go-spiffe hands it to the watcher
// as a gRPC Canceled status before it returns, and nothing is retried.
func streamCancelled(err error) bool {
	return errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled
}
