// Command image builds sworn's container image without a Docker daemon, as
// ko does, with github.com/google/go-containerregistry: one OCI image index
// for linux/amd64 and linux/arm64, written as an OCI image layout (by
// default under dist/image at the repository root; `make image` runs it).
//
// It is its own module, like deploy/vault/server, so go-containerregistry
// and its dependencies never enter sworn's go.mod.
//
// What the image guarantees (image_test.go checks each):
//   - /usr/local/bin/sworn is the entrypoint: a static binary (CGO_ENABLED=0,
//     -trimpath, -ldflags "-s -w") whose `sworn version` names the version
//     and commit the labels name;
//   - it runs as 65532:65532 (nonroot in /etc/passwd) by default; the agent's
//     DaemonSet asks for runAsUser 0, which the image does not prevent;
//   - the build machine's CA certificates are at
//     /etc/ssl/certs/ca-certificates.crt, where Go's crypto/x509 looks;
//   - the OCI labels org.opencontainers.image.{source,version,revision,
//     licenses,title,created} are set, created being the commit's time (so
//     two builds of one commit with one Go toolchain give one digest: seen
//     by hand when this was written, not checked by the test, which would
//     cost a second cross-build of both platforms);
//   - the layout's index.json holds one entry, the image index, named by
//     org.opencontainers.image.ref.name, so `crane push dist/image REF`
//     pushes both platforms and skopeo finds it as oci:dist/image:VERSION.
package main
