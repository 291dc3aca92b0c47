package helperconf_test

import (
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/cli/helperconf"
)

// FuzzParse: helper.conf is attacker input (a ConfigMap anyone with edit
// rights writes); whatever it holds, Parse returns a config or an error,
// never panics, and a config it returns passes its own rules.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		spiffeHelperExample,
		"jwt_svids = [{jwt_audience=\"a\", jwt_svid_file_name=\"f\"}]",
		"key_file_mode = 0x1ff\nsvid_file_name=\"a\"",
		"health_checks = [{bind_port = 1}, {}]",
		"daemon_mode = tru",
		"cmd = <<EOF\nx\nEOF\n",
		"a b { }",
		"\"cmd\" = \"\\u00\"",
		"cert_file_mode = 1.5",
		"x = [1, [2], {y = 3}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := helperconf.Parse("fuzz.conf", data)
		if err != nil {
			return
		}
		if *c.KeyFileMode > 0o777 || *c.CertFileMode > 0o777 {
			t.Fatalf("mode out of range: %v %v", *c.KeyFileMode, *c.CertFileMode)
		}
		if c.HealthChecks.BindPort < 1 || c.HealthChecks.BindPort > 65535 {
			t.Fatalf("port %d", c.HealthChecks.BindPort)
		}
		_, _ = c.Args()
	})
}
