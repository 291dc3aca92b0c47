// Command etcd is etcd v3.7.3 built from the Go module proxy, for the
// Kubernetes tests' real kube-apiserver (Debian's etcd is too old).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
