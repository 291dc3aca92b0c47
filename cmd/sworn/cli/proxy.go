package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/spf13/cobra"

	"github.com/sworn-id/sworn/cmd/sworn/proxy"
	"github.com/sworn-id/sworn/trust"
)

type proxyOptions struct {
	sub            string // "server" or "client" when run as that subcommand
	listen         string
	target         string
	allow          []string
	verify         []string // ghostunnel's client-side --verify-uri
	deny           []string
	allowHTTP      []string
	allowNone      bool
	policyFile     string
	client         bool
	http           bool
	workloadAPI    string
	useWorkloadAPI bool
	unsafeListen   bool
	unsafeTarget   bool
	socketMode     string
	status         string
	fetchTimeout   time.Duration
	drainTimeout   time.Duration
	connectTimeout time.Duration
	metricsAddr    string
	logLevel       string
	logFormat      string
}

const proxyLong = `Run an mTLS proxy with this process's SVID from the Workload API.

Server mode (default, or sworn proxy server): terminate mTLS on --listen,
admit only peers the policy allows (a refused peer fails the handshake and
the target never sees a byte), forward the plain stream to --target, which
must be on this machine (127.0.0.1, localhost, ::1 or unix:PATH) unless
--unsafe-target is given.
  sworn proxy server --listen :8443 --target 127.0.0.1:8080 --allow 'spiffe://td/ns/web/**'

Client mode (--client, or sworn proxy client): take plain connections on
--listen, which must be on this machine unless --unsafe-listen is given
(whoever reaches it speaks with this workload's SVID), and dial --target
over mTLS, refusing a server the policy does not allow.
  sworn proxy client --listen unix:/run/app/db.sock --target db.internal:8443 --verify-uri spiffe://td/ns/db/sa/postgres

HTTP mode: also decide each request by peer, method and path, and pass the
verified peer to the backend in X-Forwarded-Client-Cert.
  sworn proxy --http --listen :8443 --target unix:/run/app/http.sock \
    --allow-http 'spiffe://td/ns/web/sa/frontend GET,HEAD /api/orders/*'

Addresses are HOST:PORT or unix:PATH; a listen socket is created with
--socket-mode, replaces a stale socket a dead process left, refuses one
someone serves, and is removed on a clean stop.

Patterns: spiffe://td (whole trust domain), exact IDs, * for one path
segment, ** (last) for the rest. --deny wins over --allow. A policy that
admits nobody is refused unless --allow-none is given. --policy FILE (YAML:
allow, deny, http) is reloaded when it changes.

--status ADDR serves /_status (JSON: ok, ready, the SVID's SPIFFE ID and
expiry, the backend check; 503 unless ok) and /_metrics, as ghostunnel.

ghostunnel flags accepted: the server and client subcommands, --listen,
--target (HOST:PORT or unix:PATH), --allow-uri and --allow-uri-san (server),
--verify-uri and --verify-uri-san (client), --use-workload-api,
--use-workload-api-addr, --unsafe-listen, --unsafe-target, --status,
--connect-timeout, --shutdown-timeout.
Not accepted: --keystore, --cert, --key, --storepass, --cacert (the SVID and
bundle always come from the Workload API); --allow-all, --allow-cn,
--allow-ou, --allow-dns, --allow-ip and their --verify-* forms (use
--allow spiffe://td for a whole trust domain); --allow-policy/--allow-query
(use --policy); --disable-authentication; --auto-acme-*; --proxy-protocol;
--target-status; --override-server-name; --proxy; --timed-reload (SVIDs
rotate by push); --close-timeout, --max-conn-lifetime,
--max-concurrent-conns; --metrics-graphite, --metrics-url; --enable-pprof,
--enable-shutdown; --quiet, --syslog; keychain, PKCS#11 and landlock flags.`

func newProxyCommand() *cobra.Command {
	cmd := proxyCommand("proxy", "", "An mTLS sidecar that admits only allow-listed SPIFFE IDs", proxyLong)
	cmd.AddCommand(
		proxyCommand("server", "server", "Server mode: mTLS in on --listen, plain out to a local --target",
			"As sworn proxy (see sworn proxy --help), in server mode, as ghostunnel server."),
		proxyCommand("client", "client", "Client mode: plain in on a local --listen, mTLS out to --target",
			"As sworn proxy --client (see sworn proxy --help), as ghostunnel client."),
	)
	return cmd
}

// proxyCommand is `sworn proxy` or one of its ghostunnel-style
// subcommands, sub naming the mode it fixes.
func proxyCommand(use, sub, short, long string) *cobra.Command {
	o := &proxyOptions{sub: sub, client: sub == "client"}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "", "address to listen on, HOST:PORT or unix:PATH (required)")
	f.StringVar(&o.target, "target", "", "address to forward to, HOST:PORT or unix:PATH (required)")
	f.StringArrayVar(&o.allow, "allow", nil, "SPIFFE ID pattern to admit (repeatable)")
	f.StringArrayVar(&o.allow, "allow-uri", nil, "alias of --allow, as in ghostunnel")
	f.StringArrayVar(&o.allow, "allow-uri-san", nil, "alias of --allow, as in ghostunnel")
	f.StringArrayVar(&o.verify, "verify-uri", nil, "client mode: alias of --allow for the server's ID, as in ghostunnel")
	f.StringArrayVar(&o.verify, "verify-uri-san", nil, "client mode: alias of --verify-uri, as in ghostunnel")
	f.StringArrayVar(&o.deny, "deny", nil, "SPIFFE ID pattern to refuse, winning over --allow (repeatable)")
	f.StringArrayVar(&o.allowHTTP, "allow-http", nil, "HTTP mode: \"PATTERN METHODS PATH\" to admit (repeatable; METHODS may be *, PATH may end in *)")
	f.BoolVar(&o.allowNone, "allow-none", false, "start even though the policy admits nobody (for a --policy file filled in later)")
	f.StringVar(&o.policyFile, "policy", "", "YAML policy file (allow, deny, http), reloaded on change")
	if sub == "" {
		f.BoolVar(&o.client, "client", false, "client mode: plain in, mTLS out (as sworn proxy client)")
	}
	if sub != "client" {
		f.BoolVar(&o.http, "http", false, "HTTP mode: per-request authorization and X-Forwarded-Client-Cert")
	}
	f.BoolVar(&o.unsafeListen, "unsafe-listen", false, "client mode: allow a --listen address other machines can reach")
	f.BoolVar(&o.unsafeTarget, "unsafe-target", false, "server mode: allow a --target that is not on this machine")
	f.StringVar(&o.socketMode, "socket-mode", "0660", "mode of a unix: --listen or --status socket")
	f.StringVar(&o.workloadAPI, "workload-api", "", "Workload API address (default $SPIFFE_ENDPOINT_SOCKET, else the agent's default socket)")
	f.StringVar(&o.workloadAPI, "use-workload-api-addr", "", "alias of --workload-api, as in ghostunnel")
	f.BoolVar(&o.useWorkloadAPI, "use-workload-api", true, "take the SVID from the Workload API, as ghostunnel's flag; always true for sworn")
	f.StringVar(&o.status, "status", "", "serve /_status and /_metrics on HOST:PORT or unix:PATH, as ghostunnel (off by default)")
	f.DurationVar(&o.fetchTimeout, "fetch-timeout", 30*time.Second, "how long to wait for the first SVID")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 10*time.Second, "how long open connections get at shutdown")
	f.DurationVar(&o.drainTimeout, "shutdown-timeout", 10*time.Second, "alias of --drain-timeout, as in ghostunnel")
	f.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "bound on dialling the target and on each TLS handshake")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics here (off by default; --status serves them too)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "text or json")
	return cmd
}

// flagPolicy is the policy the flags give.
func (o *proxyOptions) flagPolicy() (*trust.Policy, error) {
	p, err := trust.NewPolicy(append(append([]string(nil), o.allow...), o.verify...), o.deny)
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

// validate refuses flag sets that contradict each other, and addresses
// that expose more than the mode needs, before anything is opened.
func (o *proxyOptions) validate(cmd *cobra.Command) error {
	switch {
	case o.listen == "" || o.target == "":
		return errors.New("--listen and --target are required")
	case o.client && o.http:
		return errors.New("--client and --http exclude each other (HTTP mode is server side)")
	case len(o.allowHTTP) > 0 && !o.http:
		return errors.New("--allow-http needs --http")
	case len(o.verify) > 0 && !o.client:
		return errors.New("--verify-uri names the server a client connects to: use it in client mode, and --allow-uri in server mode")
	case cmd.Flags().Changed("use-workload-api") && !o.useWorkloadAPI:
		return errors.New("--use-workload-api=false: sworn proxy always takes its SVID and bundle from the Workload API")
	case o.allowNone && (len(o.allow)+len(o.verify)+len(o.allowHTTP) > 0):
		return errors.New("--allow-none contradicts the allow entries given: drop one or the other")
	case o.unsafeListen && !o.client:
		return errors.New("--unsafe-listen is for client mode; a server-mode proxy may listen on any address, as mTLS guards it")
	case o.unsafeTarget && o.client:
		return errors.New("--unsafe-target is for server mode; a client-mode proxy's target is reached over mTLS")
	case o.client && !o.unsafeListen && !proxy.IsLocal(o.listen):
		return fmt.Errorf("--listen %q can be reached from other machines, and in client mode whoever connects speaks with this workload's SVID: listen on 127.0.0.1:PORT, localhost:PORT or unix:PATH, or give --unsafe-listen", o.listen)
	case !o.client && !o.unsafeTarget && !proxy.IsLocal(o.target):
		return fmt.Errorf("--target %q is not on this machine, and in server mode the stream leaves the proxy unencrypted: target 127.0.0.1:PORT, localhost:PORT or unix:PATH, or give --unsafe-target", o.target)
	}
	if _, err := o.mode(); err != nil {
		return err
	}
	return nil
}

// mode parses --socket-mode.
func (o *proxyOptions) mode() (fs.FileMode, error) {
	m, err := parseFileMode(o.socketMode)
	if err != nil {
		return 0, fmt.Errorf("--socket-mode %q: want an octal permission such as 0660", o.socketMode)
	}
	return m, nil
}

// errAdmitsNobody says what to do about a policy that admits nobody.
var errAdmitsNobody = errors.New("no allow entry: this proxy would refuse every peer. Give --allow (or --allow-uri, --allow-uri-san; --verify-uri in client mode), --allow-http in HTTP mode, or allow:/http: entries in the --policy file; or --allow-none to start admitting nobody, for a policy file filled in later")
