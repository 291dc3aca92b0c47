package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/trust"
)

type svidWriteOptions struct {
	workloadFlags
	dir     string
	once    bool
	exec    string
	signal  string
	pidFile string
}

func newSVIDWriteCommand() *cobra.Command {
	o := &svidWriteOptions{}
	cmd := &cobra.Command{
		Use:   "write --dir DIR [--once] [--exec CMD [-- ARGS...]] [--signal SIG [--pid-file F]]",
		Short: "Keep svid.pem, svid_key.pem and bundle.pem up to date in a directory",
		Long: `Write this process's default SVID to DIR as svid.pem, svid_key.pem (0600) and
bundle.pem (plus federated_bundle.pem when there are federated trust domains),
each by atomic rename, and rewrite them on every rotation.

--once writes them once and exits (for init containers).
--exec CMD starts CMD (arguments after --) once the files exist; on every
rotation it is sent --signal, or restarted if no signal is given. sworn exits
with CMD's status when CMD exits.
--signal SIG --pid-file F signals the process whose PID is in F instead.`,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	o.add(cmd)
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "directory to write into (required)")
	f.BoolVar(&o.once, "once", false, "write once and exit")
	f.StringVar(&o.exec, "exec", "", "command to run, and signal or restart on rotation")
	f.StringVar(&o.signal, "signal", "", "signal to send on rotation, e.g. SIGHUP")
	f.StringVar(&o.pidFile, "pid-file", "", "file holding the PID to signal (with --signal, without --exec)")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
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

func (o *svidWriteOptions) validate(args []string) (syscall.Signal, error) {
	var sig syscall.Signal
	if o.signal != "" {
		s, err := parseSignal(o.signal)
		if err != nil {
			return 0, err
		}
		sig = s
	}
	switch {
	case len(args) > 0 && o.exec == "":
		return 0, errors.New("arguments are only for --exec's command")
	case o.once && (o.exec != "" || o.signal != ""):
		return 0, errors.New("--once writes and exits; it takes no --exec or --signal")
	case o.pidFile != "" && (o.signal == "" || o.exec != ""):
		return 0, errors.New("--pid-file goes with --signal, without --exec")
	case o.signal != "" && o.exec == "" && o.pidFile == "":
		return 0, errors.New("--signal needs --exec or --pid-file")
	}
	return sig, nil
}

func (o *svidWriteOptions) run(cmd *cobra.Command, args []string) error {
	sig, err := o.validate(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	w := &svidWriter{opts: o, args: args, sig: sig, out: cmd.OutOrStdout(), cancel: cancel, result: make(chan error, 1)}
	if o.once {
		fctx, fcancel := context.WithTimeout(ctx, o.timeout)
		defer fcancel()
		c, err := workloadapi.FetchX509Context(fctx, o.clientOption())
		if err != nil {
			return fmt.Errorf("svid write: %w", err)
		}
		return w.write(c)
	}
	err = workloadapi.WatchX509Context(ctx, w, o.clientOption())
	w.stopChild()
	select {
	case childErr := <-w.result:
		return childErr
	default:
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

type svidWriter struct {
	opts   *svidWriteOptions
	args   []string
	sig    syscall.Signal
	out    io.Writer
	cancel context.CancelFunc
	result chan error

	mu    sync.Mutex
	child *child
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

func (w *svidWriter) write(c *workloadapi.X509Context) error {
	svid := c.DefaultSVID()
	own, err := c.Bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	if err != nil {
		return err
	}
	if err := trust.WriteSVIDFiles(w.opts.dir, svid, own); err != nil {
		return err
	}
	var federated []*x509bundle.Bundle
	for _, b := range c.Bundles.Bundles() {
		if b.TrustDomain() != svid.ID.TrustDomain() {
			federated = append(federated, b)
		}
	}
	if err := trust.WriteFederatedBundles(w.opts.dir, federated); err != nil {
		return err
	}
	fmt.Fprintf(w.out, "wrote %s (serial %s, valid until %s) to %s\n", svid.ID, svid.Certificates[0].SerialNumber.Text(16),
		svid.Certificates[0].NotAfter.Format(time.RFC3339), w.opts.dir)
	return nil
}

func (w *svidWriter) OnX509ContextUpdate(c *workloadapi.X509Context) {
	if err := w.write(c); err != nil {
		fmt.Fprintln(w.out, "error writing SVID files:", err)
		return
	}
	switch {
	case w.opts.exec != "":
		w.mu.Lock()
		running := w.child != nil
		w.mu.Unlock()
		switch {
		case !running:
			w.startChild()
		case w.sig != 0:
			w.signalChild()
		default:
			w.stopChild()
			w.startChild()
		}
	case w.opts.pidFile != "":
		if err := signalPIDFile(w.opts.pidFile, w.sig); err != nil {
			fmt.Fprintln(w.out, "error signalling:", err)
		}
	}
}

func (w *svidWriter) OnX509ContextWatchError(err error) {
	if !errors.Is(err, context.Canceled) {
		fmt.Fprintln(w.out, "watch error (retrying):", err)
	}
}

func (w *svidWriter) startChild() {
	c := &child{cmd: exec.Command(w.opts.exec, w.args...), done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr, c.cmd.Stdin = os.Stdout, os.Stderr, os.Stdin
	if err := c.cmd.Start(); err != nil {
		w.finish(fmt.Errorf("svid write: start %s: %w", w.opts.exec, err))
		return
	}
	w.mu.Lock()
	w.child = c
	w.mu.Unlock()
	go func() {
		err := c.cmd.Wait()
		close(c.done)
		w.mu.Lock()
		ownExit := w.child == c // not stopped by us for a restart
		if ownExit {
			w.child = nil
		}
		w.mu.Unlock()
		if ownExit {
			// The command ended on its own: so does sworn, with its status.
			w.finish(err)
		}
	}()
}

func (w *svidWriter) signalChild() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.child != nil {
		_ = w.child.cmd.Process.Signal(w.sig)
	}
}

// stopChild ends the command (SIGTERM, then SIGKILL after 10s) and waits.
func (w *svidWriter) stopChild() {
	w.mu.Lock()
	c := w.child
	w.child = nil
	w.mu.Unlock()
	if c == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (w *svidWriter) finish(err error) {
	select {
	case w.result <- err:
	default:
	}
	w.cancel()
}

func signalPIDFile(path string, sig syscall.Signal) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("%s does not hold a PID", path)
	}
	return syscall.Kill(pid, sig)
}
