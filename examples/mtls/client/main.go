// Command client calls an mTLS server and accepts it only if its SPIFFE ID
// is allow-listed, in a few lines with sworn's trust package and go-spiffe.
//
//	SPIFFE_ENDPOINT_SOCKET=unix:///run/sworn/workload.sock \
//	  client -url https://127.0.0.1:8443/ -allow spiffe://example.org/ns/api/sa/server
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/trust"
)

func main() {
	url := flag.String("url", "https://127.0.0.1:8443/", "URL to GET")
	allow := flag.String("allow", "", "comma-separated SPIFFE ID patterns the server may have")
	flag.Parse()
	if err := run(*url, strings.Split(*allow, ",")); err != nil {
		log.Fatal(err)
	}
}

func run(url string, allow []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	policy, err := trust.NewPolicy(allow, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: trust.ClientConfig(src, trust.NewGuard(policy)),
	}}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Print(string(body))
	return nil
}
