// Command server is an HTTPS server that only admits allow-listed SPIFFE
// IDs, in a few lines with sworn's trust package and go-spiffe.
//
//	SPIFFE_ENDPOINT_SOCKET=unix:///run/sworn/workload.sock \
//	  server -listen :8443 -allow 'spiffe://example.org/ns/web/**'
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/trust"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8443", "address to serve on")
	allow := flag.String("allow", "", "comma-separated SPIFFE ID patterns to admit")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *listen, strings.Split(*allow, ",")); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, listen string, allow []string) error {
	// 1. Our SVID and bundles, kept fresh from the Workload API.
	src, err := workloadapi.NewX509Source(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	// 2. Who may connect.
	policy, err := trust.NewPolicy(allow, nil)
	if err != nil {
		return err
	}
	// 3. An mTLS server that enforces it at every handshake.
	srv := &http.Server{
		Addr:              listen,
		TLSConfig:         trust.ServerConfig(src, trust.NewGuard(policy)),
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			fmt.Fprintf(w, "hello %s\n", id)
		}),
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Printf("serving on %s", listen)
	if err := srv.ListenAndServeTLS("", ""); err != http.ErrServerClosed {
		return err
	}
	return nil
}
