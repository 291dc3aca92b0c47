package config

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/sworn-id/sworn/internal/field"
)

// OIDC serves the trust domain's JWT bundle through OpenID Connect
// discovery, for verifiers (Vault, AWS STS, GCP) that only speak OIDC.
type OIDC struct {
	Enabled bool `yaml:"enabled"`
	// Issuer is the https URL verifiers are configured with; the discovery
	// document is at Issuer + "/.well-known/openid-configuration".
	Issuer string `yaml:"issuer"`
	// Listen serves HTTPS at host:port with CertFile and KeyFile
	// (re-read when they change).
	Listen   string `yaml:"listen"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Socket serves plain HTTP on a Unix socket instead, for a fronting
	// proxy that terminates TLS for the issuer's host.
	Socket string `yaml:"socket"`
	// JWTIssuerClaim puts iss = Issuer into every JWT-SVID the agent
	// issues: AWS STS, GCP and Vault require it; the JWT-SVID spec does not.
	JWTIssuerClaim bool `yaml:"jwt_issuer_claim"`
}

// validate checks the section; c gives the other sockets a Unix socket
// must not take.
func (o OIDC) validate(c *Config) field.List {
	var errs field.List
	if !o.Enabled {
		if o.JWTIssuerClaim {
			errs.Add(errors.New("needs oidc.enabled and oidc.issuer"), "jwt_issuer_claim")
		}
		return errs
	}
	errs.Add(issuerURL(o.Issuer), "issuer")
	switch {
	case o.Listen == "" && o.Socket == "":
		errs.Add(errors.New("set listen (HTTPS) or socket (plain HTTP behind a proxy)"), "listen")
	case o.Listen != "" && o.Socket != "":
		errs.Add(errors.New("set listen or socket, not both"), "socket")
	case o.Listen != "":
		errs.Add(field.HostPort(o.Listen), "listen")
		if o.CertFile == "" {
			errs.Add(errors.New("is required with listen"), "cert_file")
		}
		if o.KeyFile == "" {
			errs.Add(errors.New("is required with listen"), "key_file")
		}
	default:
		errs.Add(field.Absolute(o.Socket), "socket")
		if o.Socket == c.SocketPath || o.Socket == c.AdminSocketPath {
			errs.Add(errors.New("must differ from socket_path and admin_socket_path"), "socket")
		}
		if o.CertFile != "" || o.KeyFile != "" {
			errs.Add(errors.New("cert_file and key_file go with listen; a socket serves plain HTTP"), "socket")
		}
	}
	return errs
}

// issuerURL requires what verifiers compare the discovery document's
// issuer against: an https URL with a host and nothing after the path.
func issuerURL(s string) error {
	if err := field.HTTPS(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q has a query, fragment or user; an issuer is scheme, host and path only", s)
	}
	return nil
}
