//go:build tools

// Package server pins the HashiCorp Vault release that sworn's tests run as a
// real `vault server -dev`. It is a separate module so that Vault's large
// dependency graph never enters sworn's own go.mod.
package server

import _ "github.com/hashicorp/vault"
