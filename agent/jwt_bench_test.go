package agent_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc/metadata"

	"github.com/sworn-id/sworn/agent/config"
)

// BenchmarkJWT measures Workload API round trips on one kept connection:
// FetchJWTSVID when the token is cached (same audience) and uncached (a new
// audience each call, so a signature each call), and ValidateJWTSVID.
//
// The audience counter belongs to the whole benchmark, not to one run of
// fetch-uncached: -count repeats a sub-benchmark against this one agent,
// and a counter that restarted would ask again for audiences whose tokens
// the agent already holds (the uncached figure was then a cached one).
func BenchmarkJWT(b *testing.B) {
	ta := startAgent(b, newConfig(b, config.Rule{SPIFFEID: "spiffe://example.org/web", Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Geteuid())}}))
	client := rawClient(b, ta)
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true"))
	first, err := client.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"db"}})
	if err != nil {
		b.Fatal(err)
	}
	token := first.Svids[0].Svid
	audiences := 0

	run := func(b *testing.B, call func(i int) error) {
		lat := make([]time.Duration, 0, b.N)
		i := 0
		for b.Loop() {
			i++
			start := time.Now()
			if err := call(i); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		percentiles(b, lat, "ms")
	}
	b.Run("fetch-cached", func(b *testing.B) {
		run(b, func(int) error {
			_, err := client.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"db"}})
			return err
		})
	})
	b.Run("fetch-uncached", func(b *testing.B) {
		run(b, func(int) error {
			audiences++
			_, err := client.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{fmt.Sprintf("aud-%d", audiences)}})
			return err
		})
	})
	b.Run("validate", func(b *testing.B) {
		run(b, func(int) error {
			_, err := client.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Audience: "db", Svid: token})
			return err
		})
	})
}
