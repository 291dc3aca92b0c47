package config_test

import (
	"strings"
	"testing"

	"github.com/sworn-id/sworn/agent/config"
)

func TestOIDCSectionIsValidatedByField(t *testing.T) {
	const head = "trust_domain: example.org\nsocket_path: /run/sworn/w.sock\noidc:\n"
	tests := []struct {
		name string
		oidc string // the section's body, indented
		want string // "" for a valid section
	}{
		{name: "off", oidc: "  enabled: false\n"},
		{name: "HTTPS", oidc: "  enabled: true\n  issuer: https://oidc.example.org\n  listen: 0.0.0.0:8443\n  cert_file: /etc/c.pem\n  key_file: /etc/k.pem\n  jwt_issuer_claim: true\n"},
		{name: "socket", oidc: "  enabled: true\n  issuer: https://example.org/oidc\n  socket: /run/sworn/oidc.sock\n"},
		{name: "no issuer", oidc: "  enabled: true\n  socket: /run/sworn/oidc.sock\n",
			want: `:3: oidc.issuer: "" is not an https URL`},
		{name: "http issuer", oidc: "  enabled: true\n  issuer: http://oidc.example.org\n  socket: /run/sworn/oidc.sock\n",
			want: `:5: oidc.issuer: "http://oidc.example.org" is not an https URL`},
		{name: "issuer with a query", oidc: "  enabled: true\n  issuer: https://oidc.example.org/?a=b\n  socket: /run/sworn/oidc.sock\n",
			want: `oidc.issuer: "https://oidc.example.org/?a=b" has a query, fragment or user`},
		{name: "neither listen nor socket", oidc: "  enabled: true\n  issuer: https://oidc.example.org\n",
			want: "oidc.listen: set listen (HTTPS) or socket"},
		{name: "both", oidc: "  enabled: true\n  issuer: https://oidc.example.org\n  listen: :8443\n  cert_file: /c\n  key_file: /k\n  socket: /run/o.sock\n",
			want: "oidc.socket: set listen or socket, not both"},
		{name: "listen without a key", oidc: "  enabled: true\n  issuer: https://oidc.example.org\n  listen: :8443\n  cert_file: /c\n",
			want: "oidc.key_file: is required with listen"},
		{name: "bad listen", oidc: "  enabled: true\n  issuer: https://oidc.example.org\n  listen: nohost\n  cert_file: /c\n  key_file: /k\n",
			want: "oidc.listen: address nohost: missing port in address"},
		{name: "socket is the workload socket", oidc: "  enabled: true\n  issuer: https://oidc.example.org\n  socket: /run/sworn/w.sock\n",
			want: "oidc.socket: must differ from socket_path and admin_socket_path"},
		{name: "relative socket", oidc: "  enabled: true\n  issuer: https://oidc.example.org\n  socket: o.sock\n",
			want: `oidc.socket: "o.sock" is not an absolute path`},
		{name: "issuer claim while off", oidc: "  jwt_issuer_claim: true\n",
			want: ":4: oidc.jwt_issuer_claim: needs oidc.enabled and oidc.issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("agent.yaml", []byte(head+tt.oidc))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
