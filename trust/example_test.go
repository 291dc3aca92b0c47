package trust_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/trust"
)

// The README's "mTLS between services" snippet, between the markers: an
// HTTPS server that admits only allow-listed peers. It needs a running
// agent, so it is compiled, not run.
func ExampleServerConfig() {
	ctx := context.Background()
	// README begin
	src, err := workloadapi.NewX509Source(ctx) // SVID + bundles, kept fresh
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	policy, err := trust.NewPolicy([]string{"spiffe://example.org/ns/web/**"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{TLSConfig: trust.ServerConfig(src, trust.NewGuard(policy))}
	// README end
	srv.ReadHeaderTimeout = 5 * time.Second
	log.Fatal(srv.ListenAndServeTLS("", ""))
}

// The client side: a TLS connection to a server whose SPIFFE ID the policy
// allows. It needs a running agent, so it is compiled, not run.
func ExampleClientConfig() {
	ctx := context.Background()
	src, err := workloadapi.NewX509Source(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	policy, err := trust.NewPolicy([]string{"spiffe://example.org/ns/db/sa/postgres"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: trust.ClientConfig(src, trust.NewGuard(policy))}}
	resp, err := client.Get("https://db.internal:8443/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
}

// The README's policy file, and what it decides.
func ExampleParsePolicy() {
	policy, err := trust.ParsePolicy([]byte(readmePolicy))
	if err != nil {
		log.Fatal(err)
	}
	for _, id := range []string{
		"spiffe://example.org/ns/payments/sa/api",
		"spiffe://example.org/ns/payments/sa/legacy",
		"spiffe://example.org/ns/web/sa/frontend",
	} {
		d := policy.Decide(spiffeid.RequireFromString(id))
		fmt.Printf("%s: allowed=%v (%s)\n", id, d.Allowed, d.Rule)
	}
	// In HTTP mode the frontend may connect, and each request is decided.
	frontend := spiffeid.RequireFromString("spiffe://example.org/ns/web/sa/frontend")
	fmt.Println("connect:", policy.ForConnections().Decide(frontend).Allowed)
	for _, req := range []struct{ method, path string }{{"GET", "/api/orders/42"}, {"POST", "/api/orders/42"}} {
		d := policy.DecideHTTPPath(frontend, req.method, req.path)
		fmt.Printf("%s %s: allowed=%v\n", req.method, req.path, d.Allowed)
	}
	// Output:
	// spiffe://example.org/ns/payments/sa/api: allowed=true (allow spiffe://example.org/ns/payments/**)
	// spiffe://example.org/ns/payments/sa/legacy: allowed=false (deny spiffe://example.org/ns/payments/sa/legacy)
	// spiffe://example.org/ns/web/sa/frontend: allowed=false (no allow entry matches)
	// connect: true
	// GET /api/orders/42: allowed=true
	// POST /api/orders/42: allowed=false
}

// readmePolicy is the policy file the README shows, byte for byte.
const readmePolicy = `allow: [spiffe://example.org/ns/payments/**]
deny:  [spiffe://example.org/ns/payments/sa/legacy]
http:                                  # HTTP mode only
  - id: spiffe://example.org/ns/web/sa/frontend
    methods: [GET, HEAD]
    path: /api/orders/*                # a trailing * is a prefix
`

// An observer sees every decision a Guard makes, e.g. to log or count it.
func ExampleWithObserver() {
	policy, err := trust.NewPolicy([]string{"spiffe://example.org/ns/web/**"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	g := trust.NewGuard(policy, trust.WithObserver(func(d trust.Decision) {
		fmt.Printf("%s allowed=%v by %q\n", d.ID, d.Allowed, d.Rule)
	}))
	authorize := g.Authorizer() // what ServerConfig and ClientConfig check at each handshake
	_ = authorize(spiffeid.RequireFromString("spiffe://example.org/ns/web/sa/frontend"), nil)
	_ = authorize(spiffeid.RequireFromString("spiffe://example.org/ns/db/sa/postgres"), nil)
	// Output:
	// spiffe://example.org/ns/web/sa/frontend allowed=true by "allow spiffe://example.org/ns/web/**"
	// spiffe://example.org/ns/db/sa/postgres allowed=false by "no allow entry matches"
}

// A policy file is re-read when it changes (a ConfigMap's symlink swap
// included) and applies from the next handshake; a file that does not
// parse is reported and the policy in force stays. It needs a running
// agent, so it is compiled, not run.
func ExampleWatchPolicyFile() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	policy, err := trust.LoadPolicy("/etc/app/policy.yaml")
	if err != nil {
		log.Fatal(err)
	}
	g := trust.NewGuard(policy)
	go trust.WatchPolicyFile(ctx, "/etc/app/policy.yaml", 2*time.Second, g.SetPolicy, func(err error) {
		log.Printf("policy not reloaded, the one in force stays: %v", err)
	})
	srv := &http.Server{Addr: ":8443", TLSConfig: trust.ServerConfig(src, g), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
