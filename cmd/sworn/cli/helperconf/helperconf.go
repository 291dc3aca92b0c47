package helperconf

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/hcl/ast"
	"github.com/hashicorp/hcl/hcl/parser"
	hclstrconv "github.com/hashicorp/hcl/hcl/strconv"
	"github.com/hashicorp/hcl/hcl/token"
)

// Defaults spiffe-helper applies to settings left out.
const (
	DefaultCertFileMode      fs.FileMode = 0o644
	DefaultKeyFileMode       fs.FileMode = 0o600
	DefaultJWTSVIDFileMode   fs.FileMode = 0o600
	DefaultJWTBundleFileMode fs.FileMode = 0o600
	DefaultBindPort                      = 8081
	DefaultLivenessPath                  = "/live"
	DefaultReadinessPath                 = "/ready"
)

// Config is a parsed helper.conf, with the keys spiffe-helper reads.
type Config struct {
	AgentAddress string // agent_address
	Cmd          string // cmd
	CmdArgs      string // cmd_args, split as spiffe-helper does by Args
	PIDFileName  string // pid_file_name
	CertDir      string // cert_dir
	RenewSignal  string // renew_signal
	Hint         string // hint

	SVIDFileName       string // svid_file_name
	SVIDKeyFileName    string // svid_key_file_name
	SVIDBundleFileName string // svid_bundle_file_name

	JWTSVIDs          []JWTSVID // jwt_svids
	JWTBundleFileName string    // jwt_bundle_file_name

	DaemonMode               *bool // daemon_mode; nil when left out (spiffe-helper's default is true)
	AddIntermediatesToBundle bool  // add_intermediates_to_bundle
	IncludeFederatedDomains  bool  // include_federated_domains

	// File modes; nil when left out (see the Default* constants).
	CertFileMode, KeyFileMode, JWTSVIDFileMode, JWTBundleFileMode *fs.FileMode

	HealthChecks HealthChecks // health_checks
}

// JWTSVID is one entry of jwt_svids: a JWT-SVID for an audience, kept in a file.
type JWTSVID struct {
	Audience       string   // jwt_audience
	ExtraAudiences []string // jwt_extra_audiences
	FileName       string   // jwt_svid_file_name
}

// HealthChecks is the health_checks block.
type HealthChecks struct {
	ListenerEnabled bool   // listener_enabled
	BindPort        int    // bind_port
	LivenessPath    string // liveness_path
	ReadinessPath   string // readiness_path
}

// Args splits cmd_args as spiffe-helper does: on spaces, except inside
// double quotes.
func (c *Config) Args() ([]string, error) {
	if strings.TrimSpace(c.CmdArgs) == "" {
		return nil, nil
	}
	r := csv.NewReader(strings.NewReader(c.CmdArgs))
	r.Comma = ' '
	args, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("helperconf: cmd_args: %w", err)
	}
	return args, nil
}

// Parse reads helper.conf's contents; name is the file's name for errors.
// It applies spiffe-helper's defaults and checks its rules.
func Parse(name string, data []byte) (*Config, error) {
	f, err := parser.ParseDontErrorOnDuplicateKeys(data)
	if err != nil {
		var pe *parser.PosError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("helperconf: %s:%d:%d: %w", name, pe.Pos.Line, pe.Pos.Column, pe.Err)
		}
		return nil, fmt.Errorf("helperconf: %s: %w", name, err)
	}
	list, ok := f.Node.(*ast.ObjectList)
	if !ok {
		return nil, fmt.Errorf("helperconf: %s: not a list of settings", name)
	}
	d := &decoder{name: name}
	c := &Config{}
	if err := d.top(c, list); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("helperconf: %s: %w", name, err)
	}
	c.defaults()
	return c, nil
}

func (c *Config) defaults() {
	for _, m := range []struct {
		p   **fs.FileMode
		def fs.FileMode
	}{{&c.CertFileMode, DefaultCertFileMode}, {&c.KeyFileMode, DefaultKeyFileMode},
		{&c.JWTSVIDFileMode, DefaultJWTSVIDFileMode}, {&c.JWTBundleFileMode, DefaultJWTBundleFileMode}} {
		if *m.p == nil {
			v := m.def
			*m.p = &v
		}
	}
	h := &c.HealthChecks
	if h.BindPort == 0 {
		h.BindPort = DefaultBindPort
	}
	if h.LivenessPath == "" {
		h.LivenessPath = DefaultLivenessPath
	}
	if h.ReadinessPath == "" {
		h.ReadinessPath = DefaultReadinessPath
	}
}

// check applies spiffe-helper's rules between settings.
func (c *Config) check() error {
	set := 0
	for _, s := range []string{c.SVIDFileName, c.SVIDKeyFileName, c.SVIDBundleFileName} {
		if s != "" {
			set++
		}
	}
	switch {
	case set != 0 && set != 3:
		return errors.New("svid_file_name, svid_key_file_name and svid_bundle_file_name go together: set all three or none")
	case set == 0 && len(c.JWTSVIDs) == 0 && c.JWTBundleFileName == "":
		return errors.New("nothing to write: set svid_file_name, svid_key_file_name and svid_bundle_file_name, jwt_svids or jwt_bundle_file_name")
	case c.PIDFileName != "" && c.RenewSignal == "":
		return errors.New("pid_file_name needs renew_signal")
	case c.PIDFileName != "" && c.DaemonMode != nil && !*c.DaemonMode:
		return errors.New("pid_file_name is only used with daemon_mode = true")
	}
	for i, j := range c.JWTSVIDs {
		if j.Audience == "" || j.FileName == "" {
			return fmt.Errorf("jwt_svids[%d]: jwt_audience and jwt_svid_file_name are both required", i)
		}
	}
	for _, p := range []string{c.HealthChecks.LivenessPath, c.HealthChecks.ReadinessPath} {
		if p != "" && !strings.HasPrefix(p, "/") {
			return fmt.Errorf("health_checks: path %q must start with /", p)
		}
	}
	return nil
}

// keyName returns an item's key (unquoted) or an error for a nested
// key list such as `a b { }`.
func (d *decoder) keyName(item *ast.ObjectItem) (string, error) {
	if len(item.Keys) != 1 {
		return "", d.errorf(item.Pos(), "a setting has one name, not %d", len(item.Keys))
	}
	t := item.Keys[0].Token
	if t.Type == token.STRING {
		s, err := hclstrconv.Unquote(t.Text)
		if err != nil {
			return "", d.errorf(t.Pos, "key %s: %v", t.Text, err)
		}
		return s, nil
	}
	return t.Text, nil
}

type decoder struct{ name string }

func (d *decoder) errorf(pos token.Pos, format string, args ...any) error {
	return fmt.Errorf("helperconf: %s:%d: %s", d.name, pos.Line, fmt.Sprintf(format, args...))
}

// parseMode reads a permission mode written as HCL reads numbers (0600 is
// octal), refusing anything outside 0-0777.
func parseMode(text string) (fs.FileMode, error) {
	n, err := strconv.ParseInt(text, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not a number", text)
	}
	if n < 0 || n > 0o777 {
		return 0, fmt.Errorf("%s is not a permission mode (0 to 0777; write modes in octal with a leading 0, as 0600)", text)
	}
	return fs.FileMode(n), nil
}
