package config_test

import (
	"strings"
	"testing"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/config"
)

func TestConnectionCapLeavesTheReserve(t *testing.T) {
	defaults := config.Limits{}
	defaults.SetDefaults()
	tests := []struct {
		name   string
		limits config.Limits
		nofile uint64
		want   int
	}{
		{name: "the review's 20,000 descriptors", limits: defaults, nofile: 20000, want: (20000 - 1024) / 2},
		{name: "a systemd unit's hard limit", limits: defaults, nofile: 524288, want: (524288 - 1024) / 2},
		{name: "a low limit keeps a quarter in reserve", limits: defaults, nofile: 1024, want: (1024 - 256) / 2},
		{name: "no descriptors at all still allows one", limits: defaults, nofile: 0, want: 1},
		{name: "set explicitly", limits: config.Limits{MaxConnections: 50, ReservedFDs: 1024}, nofile: 20000, want: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.limits.ConnectionCap(tt.nofile)
			if got != tt.want {
				t.Fatalf("ConnectionCap(%d) = %d, want %d", tt.nofile, got, tt.want)
			}
			if tt.limits.MaxConnections == 0 && tt.nofile > 0 && uint64(2*got) > tt.nofile-min(uint64(tt.limits.ReservedFDs), tt.nofile/4) {
				t.Fatalf("%d connections (two descriptors each) eat into the reserve of %d", got, tt.limits.ReservedFDs)
			}
		})
	}
}

// One uid must never be able to take every connection, whatever the
// open-file limit: under the common 1,024 the total is 384, below the
// per-uid default.
func TestUIDConnectionCapIsHalfTheTotalAtMost(t *testing.T) {
	defaults := config.Limits{}
	defaults.SetDefaults()
	tests := []struct {
		name   string
		limits config.Limits
		nofile uint64
		want   int
	}{
		{name: "a systemd unit's hard limit keeps the default", limits: defaults, nofile: 524288, want: 1024},
		{name: "the common 1,024", limits: defaults, nofile: 1024, want: 384 / 2},
		{name: "the review's 20,000", limits: defaults, nofile: 20000, want: 1024},
		{name: "a total set by hand", limits: config.Limits{MaxConnections: 100, MaxConnectionsPerUID: 1024}, nofile: 20000, want: 50},
		{name: "never zero", limits: config.Limits{MaxConnections: 1, MaxConnectionsPerUID: 1024}, nofile: 20000, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.limits.UIDConnectionCap(tt.nofile); got != tt.want {
				t.Fatalf("UIDConnectionCap(%d) = %d, want %d", tt.nofile, got, tt.want)
			}
		})
	}
}

func TestLimitsDefaultsAndValidation(t *testing.T) {
	base := "trust_domain: example.org\n"
	c, err := config.Parse("sworn.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Limits; l.MaxConnectionsPerUID != config.DefaultMaxConnectionsPerUID || l.MaxStreamsPerUID != config.DefaultMaxStreamsPerUID ||
		l.MaxStreamsPerConnection != config.DefaultMaxStreamsPerConnection || l.StreamSendTimeout != config.DefaultStreamSendTimeout ||
		l.JWTCacheBytes != cache.DefaultJWTCacheBytes || l.JWTCacheBytesPerUID != cache.DefaultJWTCacheBytesPerUID || l.MaxConnections != 0 ||
		l.MaxDigestBytes != attest.DefaultMaxDigestBytes {
		t.Fatalf("defaults not applied: %+v", l)
	}
	tests := []struct {
		name, yaml, want string
	}{
		{name: "per uid zero after defaults is impossible, negative is refused", yaml: "limits:\n  max_connections_per_uid: -1\n", want: "sworn.yaml:3: limits.max_connections_per_uid: -1 is out of range"},
		{name: "tiny send timeout", yaml: "limits:\n  stream_send_timeout: 10ms\n", want: "limits.stream_send_timeout: 10ms is out of range [1s, 1h0m0s]"},
		{name: "per-uid share above the total", yaml: "limits:\n  jwt_cache_bytes: 1048576\n  jwt_cache_bytes_per_uid: 2097152\n", want: "limits.jwt_cache_bytes_per_uid: must not exceed jwt_cache_bytes"},
		{name: "reserve too small", yaml: "limits:\n  reserved_fds: 10\n", want: "limits.reserved_fds: 10 is out of range [64, 1048576]"},
		{name: "digest limit under a megabyte", yaml: "limits:\n  max_digest_bytes: 1000\n", want: "limits.max_digest_bytes: 1000 is out of range [1048576, 68719476736]"},
		{name: "unknown field", yaml: "limits:\n  max_conns: 5\n", want: "max_conns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("sworn.yaml", []byte(base+tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
