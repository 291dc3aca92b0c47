package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/secpath"
	"github.com/sworn-id/sworn/internal/filewatch"
)

type agentOptions struct {
	configFile  string
	dev         bool
	trustDomain string
	socket      string
	adminSocket string
	dataDir     string
	healthAddr  string
	logLevel    string
	logFormat   string
}

func newAgentCommand() *cobra.Command {
	o := &agentOptions{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent",
		Long: `Run the node agent: serve the SPIFFE Workload API on a Unix socket.

With --config FILE the agent reads its YAML configuration; flags override it.
With --dev it needs no file: it uses the embedded CA under the data directory
and gives every local process spiffe://<trust-domain>/uid/<uid>.

SIGHUP reloads the rules from the config file; SIGTERM drains and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.configFile, "config", "", "path to the agent's YAML configuration")
	f.BoolVar(&o.dev, "dev", false, "run without a config file on the embedded CA, one identity per uid")
	f.StringVar(&o.trustDomain, "trust-domain", "", "trust domain (default with --dev: example.org)")
	f.StringVar(&o.socket, "socket", "", "Workload API socket path (default "+config.DefaultSocketPath+")")
	f.StringVar(&o.adminSocket, "admin-socket", "", "admin API socket path (default "+config.DefaultAdminSocketPath+")")
	f.StringVar(&o.dataDir, "data-dir", "", "directory for the CA and other state (default "+config.DefaultDataDir+")")
	f.StringVar(&o.healthAddr, "health-addr", "", "localhost address for /live, /ready and /metrics (default "+config.DefaultHealthAddr+")")
	f.StringVar(&o.logLevel, "log-level", "", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "", "text or json (default: the config's log.format, else text)")
	cmd.AddCommand(newAgentValidateCommand())
	return cmd
}

func newAgentValidateCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate --config FILE",
		Short: "Check a configuration file without starting the agent",
		Long: `Read and check the agent's configuration as the agent would at start and on
SIGHUP, without starting anything, as spire-agent validate does: every problem
is reported with file:line: field. Warnings (what the file allows but almost
surely does not mean) are printed too; they do not fail the check.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("--config FILE is required")
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, warn := range cfg.Warnings() {
				fmt.Fprintln(w, "warning:", warn)
			}
			_, err = fmt.Fprintf(w, "%s is valid: trust domain %s, CA %s, %d rule(s)\n", file, cfg.TrustDomain, cfg.CA.Type, len(cfg.Rules))
			return err
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "the configuration file to check")
	return cmd
}

// load reads the config (or builds the --dev one) and applies the flags.
func (o *agentOptions) load() (*config.Config, error) {
	var cfg *config.Config
	switch {
	case o.configFile != "" && o.dev:
		return nil, errors.New("--config and --dev exclude each other")
	case o.configFile != "":
		c, err := config.Load(o.configFile)
		if err != nil {
			return nil, err
		}
		cfg = c
	case o.dev:
		c, err := devConfig(o.trustDomain, os.Geteuid(), os.Getenv("XDG_RUNTIME_DIR"))
		if err != nil {
			return nil, err
		}
		cfg = c
	default:
		return nil, errors.New("give --config FILE, or --dev to try sworn without one")
	}
	override(&cfg.TrustDomain, o.trustDomain)
	for field, flag := range map[*string]string{&cfg.SocketPath: o.socket, &cfg.AdminSocketPath: o.adminSocket, &cfg.DataDir: o.dataDir} {
		// A path on the command line is relative to where the command
		// runs, as the shell user expects; the config file still wants
		// absolute paths, since its reader runs elsewhere.
		if flag != "" && !filepath.IsAbs(flag) {
			abs, err := filepath.Abs(flag)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", flag, err)
			}
			flag = abs
		}
		override(field, flag)
	}
	if o.socket != "" {
		cfg.SocketPrivate = false // a socket placed by hand may be meant for others
	}
	override(&cfg.HealthAddr, o.healthAddr)
	override(&cfg.Log.Level, o.logLevel)
	override(&cfg.Log.Format, o.logFormat)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func override(field *string, flag string) {
	if flag != "" {
		*field = flag
	}
}

// devConfig is the configuration of --dev: every local process gets the
// identity of its uid. A non-root uid gets its sockets and data in devDir.
func devConfig(trustDomain string, uid int, runtimeDir string) (*config.Config, error) {
	if trustDomain == "" {
		trustDomain = "example.org"
	}
	cfg := &config.Config{TrustDomain: trustDomain}
	if td, err := spiffeid.TrustDomainFromString(trustDomain); err == nil {
		cfg.Rules = []config.Rule{{SPIFFEID: td.IDString() + "/uid/{unix:uid}"}}
	}
	if uid != 0 {
		base, err := devDir(uid, runtimeDir)
		if err != nil {
			return nil, err
		}
		cfg.SocketPath = filepath.Join(base, "workload.sock")
		cfg.AdminSocketPath = filepath.Join(base, "admin.sock")
		cfg.DataDir = filepath.Join(base, "data")
		cfg.SocketPrivate = true // only uid's processes, by design
	}
	cfg.SetDefaults()
	return cfg, nil
}

// devDir is where a non-root --dev agent keeps its sockets and data:
// $XDG_RUNTIME_DIR/sworn when that is set (the system makes that directory
// for uid alone), else $TMPDIR/sworn-<uid>. In /tmp anyone can take that
// name first, and whoever controls the directory can replace the socket
// and pose as the agent: a directory that is not uid's own with mode 0700
// is refused. That leaves the sockets to uid's own processes, which is
// all --dev serves (one identity per uid).
func devDir(uid int, runtimeDir string) (string, error) {
	base := filepath.Join(os.TempDir(), fmt.Sprintf("sworn-%d", uid))
	if filepath.IsAbs(runtimeDir) { // the XDG spec says to ignore a relative one
		base = filepath.Join(runtimeDir, "sworn")
	}
	if err := secpath.PrivateDir(base, uid); err != nil {
		return "", fmt.Errorf("--dev: %w; or set XDG_RUNTIME_DIR to a directory of your own", err)
	}
	return base, nil
}

func (o *agentOptions) run(cmd *cobra.Command) error {
	if err := agentSupported(); err != nil {
		return err
	}
	cfg, err := o.load()
	if err != nil {
		return err
	}
	log, err := newLogger(cmd.ErrOrStderr(), cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	if o.dev {
		log.Warn("development mode: embedded CA, every local process gets spiffe://" + cfg.TrustDomain + "/uid/<uid>")
		log.Info("to fetch an SVID from another shell: SPIFFE_ENDPOINT_SOCKET=unix://" + cfg.SocketPath + " sworn svid fetch")
	}

	reload := func(why string) {
		next, err := o.load()
		if err == nil {
			err = a.Reload(next)
		}
		if err != nil {
			log.Error("reload refused; the current rules stay in force", "trigger", why, "error", err)
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if o.configFile == "" {
				log.Info("SIGHUP: no config file to reload")
				continue
			}
			reload("SIGHUP")
		}
	}()
	if o.configFile != "" {
		// A ConfigMap-mounted file changes by a symlink swap and no signal:
		// watch its contents too.
		loaded, _ := os.ReadFile(o.configFile)
		go filewatch.Watch(cmd.Context(), o.configFile, 2*time.Second, func(data []byte) {
			if loaded != nil && bytes.Equal(data, loaded) {
				loaded = nil // the file as loaded at start: nothing to do
				return
			}
			loaded = nil
			reload("config file changed")
		}, func(err error) { log.Warn("cannot read the config file", "error", err) })
	}
	return a.Run(cmd.Context())
}
