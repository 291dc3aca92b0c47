package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	var o options
	flag.StringVar(&o.repo, "repo", "../..", "the sworn repository to build")
	flag.StringVar(&o.out, "out", "../../dist/image", "directory to write the OCI image layout to (replaced)")
	flag.StringVar(&o.version, "version", "", "version to stamp (default: the tag at HEAD, else a Go pseudo-version of HEAD)")
	flag.StringVar(&o.caCerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA certificate bundle to copy into the image")
	flag.StringVar(&o.name, "name", "ghcr.io/sworn-id/sworn", "repository the layout names the image in (docker load tags it NAME:VERSION)")
	flag.StringVar(&o.source, "source", "https://github.com/sworn-id/sworn", "org.opencontainers.image.source")
	flag.Parse()
	digest, err := run(&o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s: image index %s (%s)\n", o.out, digest, o.version)
}
