package helperconf_test

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/cli/helperconf"
)

// spiffeHelperExample is spiffe-helper's documented full configuration,
// every key it reads, as users have it today.
const spiffeHelperExample = `agent_address = "/tmp/spire-agent/public/api.sock"
cmd = "ghostunnel"
cmd_args = "server --listen localhost:8002 --target \"localhost:8001\""
cert_dir = "certs"
renew_signal = "SIGHUP"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
jwt_svids = [{jwt_audience="your-audience", jwt_svid_file_name="jwt_svid.token"}]
jwt_bundle_file_name = "bundle.json"
daemon_mode = true
add_intermediates_to_bundle = false
include_federated_domains = true
cert_file_mode = 0444
key_file_mode = 0400
jwt_svid_file_mode = 0400
jwt_bundle_file_mode = 0444
pid_file_name = "/run/app.pid"
hint = "main"
health_checks {
  listener_enabled = true
  bind_port = 8088
  liveness_path = "/healthz"
  readiness_path = "/readyz"
}
`

func mode(m fs.FileMode) *fs.FileMode { return &m }

func TestParseReadsSpiffeHelpersKeys(t *testing.T) {
	c, err := helperconf.Parse("helper.conf", []byte(spiffeHelperExample))
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	want := &helperconf.Config{
		AgentAddress: "/tmp/spire-agent/public/api.sock", Cmd: "ghostunnel",
		CmdArgs: `server --listen localhost:8002 --target "localhost:8001"`,
		CertDir: "certs", RenewSignal: "SIGHUP", PIDFileName: "/run/app.pid", Hint: "main",
		SVIDFileName: "svid.pem", SVIDKeyFileName: "svid_key.pem", SVIDBundleFileName: "svid_bundle.pem",
		JWTSVIDs:          []helperconf.JWTSVID{{Audience: "your-audience", FileName: "jwt_svid.token"}},
		JWTBundleFileName: "bundle.json", DaemonMode: &yes, IncludeFederatedDomains: true,
		CertFileMode: mode(0o444), KeyFileMode: mode(0o400), JWTSVIDFileMode: mode(0o400), JWTBundleFileMode: mode(0o444),
		HealthChecks: helperconf.HealthChecks{ListenerEnabled: true, BindPort: 8088, LivenessPath: "/healthz", ReadinessPath: "/readyz"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	args, err := c.Args()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(args, "|"); got != "server|--listen|localhost:8002|--target|localhost:8001" {
		t.Fatalf("Args: %q", got)
	}
}

func TestParseAppliesSpiffeHelpersDefaults(t *testing.T) {
	c, err := helperconf.Parse("h.conf", []byte(`jwt_svids { jwt_audience = "a"
  jwt_svid_file_name = "a.jwt" }
jwt_svids { jwt_audience = "b"
  jwt_svid_file_name = "b.jwt"
  jwt_extra_audiences = ["c"] }
jwt_bundle_file_name = "b.json"`))
	if err != nil {
		t.Fatal(err)
	}
	if *c.CertFileMode != 0o644 || *c.KeyFileMode != 0o600 || *c.JWTSVIDFileMode != 0o600 || *c.JWTBundleFileMode != 0o600 {
		t.Fatalf("modes %v %v %v %v", *c.CertFileMode, *c.KeyFileMode, *c.JWTSVIDFileMode, *c.JWTBundleFileMode)
	}
	if c.DaemonMode != nil || c.HealthChecks.BindPort != 8081 || c.HealthChecks.LivenessPath != "/live" || c.HealthChecks.ReadinessPath != "/ready" {
		t.Fatalf("defaults: %+v", c)
	}
	if len(c.JWTSVIDs) != 2 || c.JWTSVIDs[1].ExtraAudiences[0] != "c" {
		t.Fatalf("repeated jwt_svids blocks: %+v", c.JWTSVIDs)
	}
}

func TestParseErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, conf, want string
	}{
		{name: "unknown key", conf: "svid_file_name = \"a\"\nsvid_fle_name = \"b\"\n", want: `h.conf:2: unknown key "svid_fle_name"`},
		{name: "unknown key in jwt_svids", conf: "jwt_svids = [{\n jwt_audience = \"a\"\n audience = \"x\"\n}]", want: `h.conf:3: unknown key "audience" in jwt_svids`},
		{name: "unknown key in health_checks", conf: "jwt_bundle_file_name = \"b\"\nhealth_checks {\n  port = 1\n}", want: `h.conf:3: unknown key "port" in health_checks`},
		{name: "set twice", conf: "cmd = \"a\"\ncmd = \"b\"\n", want: `h.conf:2: "cmd" set twice (first on line 1)`},
		{name: "wrong type", conf: "jwt_bundle_file_name = \"b\"\ndaemon_mode = \"no\"\n", want: `h.conf:2: daemon_mode: want a BOOL`},
		{name: "decimal mode", conf: "jwt_bundle_file_name = \"b\"\nkey_file_mode = 600\n", want: `h.conf:2: key_file_mode: 600 is not a permission mode`},
		{name: "bad port", conf: "jwt_bundle_file_name = \"b\"\nhealth_checks { bind_port = 70000 }\n", want: `h.conf:2: bind_port: 70000 is not a port`},
		{name: "syntax", conf: "cmd = \"a\"\nhealth_checks {\n", want: `h.conf:3:`},
		{name: "partial x509", conf: "svid_file_name = \"a\"\n", want: `h.conf: svid_file_name, svid_key_file_name and svid_bundle_file_name go together`},
		{name: "nothing to write", conf: "cmd = \"a\"\n", want: `h.conf: nothing to write`},
		{name: "pid without signal", conf: "jwt_bundle_file_name = \"b\"\npid_file_name = \"p\"\n", want: `pid_file_name needs renew_signal`},
		{name: "jwt without audience", conf: "jwt_svids = [{jwt_svid_file_name = \"f\"}]\n", want: `jwt_svids[0]: jwt_audience and jwt_svid_file_name are both required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helperconf.Parse("h.conf", []byte(tc.conf))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}
