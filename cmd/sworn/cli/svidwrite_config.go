package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sworn-id/sworn/cmd/sworn/cli/helperconf"
	"github.com/sworn-id/sworn/trust"
)

// complete turns flags (and --config's file, which flags override) into a
// writer, and the health address and paths ("" for no health listener).
func (o *svidWriteOptions) complete(cmd *cobra.Command, args []string) (w *svidWriter, health, live, ready string, err error) {
	changed := cmd.Flags().Changed
	if o.once {
		o.daemon = false
	}
	live, ready = helperconf.DefaultLivenessPath, helperconf.DefaultReadinessPath
	if o.config != "" {
		if live, ready, health, err = o.fromConfig(cmd, changed); err != nil {
			return nil, "", "", "", err
		}
	}
	if changed("health-addr") || o.config == "" {
		health = o.healthAddr
	}
	if len(args) == 0 {
		args = o.cmdArgs
	}
	plan, err := o.plan()
	if err != nil {
		return nil, "", "", "", err
	}
	sig, err := o.validate(args, plan)
	if err != nil {
		return nil, "", "", "", err
	}
	w = &svidWriter{
		plan: plan, client: o.clientOption(), exec: o.exec, args: args, sig: sig, pidFile: o.pidFile,
		out: cmd.OutOrStdout(), status: newWriteStatus(plan, time.Now), now: time.Now, after: time.After,
		result: make(chan error, 1),
	}
	return w, health, live, ready, nil
}

// fromConfig takes the settings of spiffe-helper's file that no flag set.
func (o *svidWriteOptions) fromConfig(cmd *cobra.Command, changed func(string) bool) (live, ready, health string, err error) {
	data, err := os.ReadFile(o.config)
	if err != nil {
		return "", "", "", fmt.Errorf("svid write: %w", err)
	}
	c, err := helperconf.Parse(o.config, data)
	if err != nil {
		return "", "", "", fmt.Errorf("svid write: %w", err)
	}
	str := func(flag string, dst *string, v string) {
		if !changed(flag) {
			*dst = v
		}
	}
	mode := func(flag string, dst *string, v *fs.FileMode) { str(flag, dst, fmt.Sprintf("%#o", *v)) }
	str("socket", &o.socket, c.AgentAddress)
	str("dir", &o.dir, c.CertDir)
	if o.dir == "" {
		o.dir = "." // spiffe-helper writes beside itself when cert_dir is empty
	}
	str("svid-file-name", &o.svidName, c.SVIDFileName)
	str("svid-key-file-name", &o.keyName, c.SVIDKeyFileName)
	str("svid-bundle-file-name", &o.bundleNm, c.SVIDBundleFileName)
	str("jwt-bundle-file-name", &o.jwtBundleName, c.JWTBundleFileName)
	str("hint", &o.hint, c.Hint)
	mode("cert-file-mode", &o.certMode, c.CertFileMode)
	mode("key-file-mode", &o.keyMode, c.KeyFileMode)
	mode("jwt-svid-file-mode", &o.jwtSVIDMode, c.JWTSVIDFileMode)
	mode("jwt-bundle-file-mode", &o.jwtBundleMode, c.JWTBundleFileMode)
	if !changed("add-intermediates-to-bundle") {
		o.addIntermediates = c.AddIntermediatesToBundle
	}
	if !changed("daemon") && !changed("once") && c.DaemonMode != nil {
		o.daemon = *c.DaemonMode
	}
	if !changed("jwt-svid") {
		o.jwtSVIDs = nil
		for _, j := range c.JWTSVIDs {
			o.jwtSVIDs = append(o.jwtSVIDs, j.Audience+"="+j.FileName+extraAudiences(j.ExtraAudiences))
		}
	}
	if err := o.commandFromConfig(cmd, c, changed); err != nil {
		return "", "", "", err
	}
	o.includeFederated, o.fromHelperConf = c.IncludeFederatedDomains, true
	if h := c.HealthChecks; h.ListenerEnabled {
		// spiffe-helper listens on every interface: the kubelet probes the pod IP.
		health = ":" + strconv.Itoa(h.BindPort)
	}
	return c.HealthChecks.LivenessPath, c.HealthChecks.ReadinessPath, health, nil
}

// extraAudiences encodes jwt_extra_audiences after the file name as
// ",aud2,aud3", the --jwt-svid syntax.
func extraAudiences(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return "," + strings.Join(a, ",")
}

// commandFromConfig takes cmd, cmd_args, renew_signal and pid_file_name.
// spiffe-helper ignores cmd and renew_signal in one-shot mode (with a
// warning); so does sworn, so a file written for it runs as it did.
func (o *svidWriteOptions) commandFromConfig(cmd *cobra.Command, c *helperconf.Config, changed func(string) bool) error {
	if changed("exec") || changed("signal") || changed("pid-file") {
		return nil // the command line says what to run and signal
	}
	if !o.daemon && (c.Cmd != "" || c.RenewSignal != "") {
		fmt.Fprintln(cmd.ErrOrStderr(), "svid write: cmd and renew_signal are ignored with daemon_mode = false")
		return nil
	}
	o.exec, o.signal, o.pidFile = c.Cmd, c.RenewSignal, c.PIDFileName
	if c.Cmd == "" && c.PIDFileName == "" {
		o.signal = "" // a renew_signal with nothing to signal, which spiffe-helper allows
	}
	args, err := c.Args()
	if err != nil {
		return fmt.Errorf("svid write: %s: %w", o.config, err)
	}
	o.cmdArgs = args
	return nil
}

// plan checks names and modes and builds the writePlan.
func (o *svidWriteOptions) plan() (*writePlan, error) {
	if o.dir == "" {
		return nil, errors.New("svid write: --dir (or --config with cert_dir) is required")
	}
	p := &writePlan{dir: o.dir, svidName: o.svidName, keyName: o.keyName, bundleName: o.bundleNm,
		jwtBundleName: o.jwtBundleName, hint: o.hint, addIntermediates: o.addIntermediates, includeFederated: o.includeFederated}
	if !o.fromHelperConf {
		p.federatedName = trust.FederatedBundleFile
	}
	set := 0
	for _, n := range []string{p.svidName, p.keyName, p.bundleName} {
		if n != "" {
			set++
		}
	}
	if set != 0 && set != 3 {
		return nil, errors.New("svid write: the SVID, key and bundle file names go together: give all three or none")
	}
	var err error
	for _, m := range []struct {
		flag string
		s    string
		dst  *fs.FileMode
	}{{"cert-file-mode", o.certMode, &p.certMode}, {"key-file-mode", o.keyMode, &p.keyMode},
		{"jwt-svid-file-mode", o.jwtSVIDMode, &p.jwtSVIDMode}, {"jwt-bundle-file-mode", o.jwtBundleMode, &p.jwtBundleMode}} {
		if *m.dst, err = parseFileMode(m.s); err != nil {
			return nil, fmt.Errorf("svid write: --%s: %w", m.flag, err)
		}
	}
	for _, j := range o.jwtSVIDs {
		aud, rest, ok := strings.Cut(j, "=")
		file, extra, _ := strings.Cut(rest, ",")
		if !ok || aud == "" || file == "" {
			return nil, fmt.Errorf("svid write: --jwt-svid %q: want AUDIENCE=FILE", j)
		}
		t := jwtTarget{audience: aud, file: file}
		if extra != "" {
			t.extra = strings.Split(extra, ",")
		}
		p.jwtSVIDs = append(p.jwtSVIDs, t)
	}
	if !p.x509() && p.jwtBundleName == "" && len(p.jwtSVIDs) == 0 {
		return nil, errors.New("svid write: nothing to write")
	}
	// Only the directory's owner and mode are checked, so every file
	// must be in it (or below it): "../x" or "/x" would not be.
	names := []string{p.svidName, p.keyName, p.bundleName, p.jwtBundleName}
	for _, t := range p.jwtSVIDs {
		names = append(names, t.file)
	}
	for _, n := range names {
		if n != "" && !filepath.IsLocal(n) {
			return nil, fmt.Errorf("svid write: file name %q is outside %s; give names relative to it, with no .. in them", n, p.dir)
		}
	}
	return p, p.checkModes(o.unsafeMode)
}

func parseFileMode(s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission mode (0 to 0777)", s)
	}
	return fs.FileMode(n), nil
}

func (o *svidWriteOptions) validate(args []string, p *writePlan) (sig syscall.Signal, err error) {
	if o.signal != "" {
		if sig, err = parseSignal(o.signal); err != nil {
			return 0, err
		}
	}
	switch {
	case len(args) > 0 && o.exec == "":
		return 0, errors.New("arguments are only for --exec's command")
	case !o.daemon && (o.exec != "" || o.signal != "" || o.pidFile != ""):
		return 0, errors.New("--daemon=false (--once) writes and exits; it takes no --exec, --signal or --pid-file")
	case o.pidFile != "" && (o.signal == "" || o.exec != ""):
		return 0, errors.New("--pid-file goes with --signal, without --exec")
	case o.signal != "" && o.exec == "" && o.pidFile == "":
		return 0, errors.New("--signal needs --exec or --pid-file")
	case (o.exec != "" || o.pidFile != "") && !p.x509():
		return 0, errors.New("--exec and --pid-file act on rotations of the X.509 files, which are not written")
	}
	return sig, nil
}
