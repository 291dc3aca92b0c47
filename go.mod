module github.com/sworn-id/sworn

go 1.26.0

require (
	github.com/google/renameio/v2 v2.0.2
	github.com/spiffe/go-spiffe/v2 v2.9.0
	golang.org/x/sys v0.50.0
	google.golang.org/grpc v1.85.0
	k8s.io/utils v0.0.0-20261023123148-ca04ba58ecab
)

require google.golang.org/protobuf v1.36.12 // indirect
