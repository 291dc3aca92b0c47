// Package vaulttest runs a real HashiCorp Vault server (`vault server -dev`)
// on loopback for tests, and a TCP proxy in front of it that a test can cut
// to simulate Vault becoming unreachable while it keeps its state.
//
// StartCluster runs a Vault HA cluster instead: n `vault server` processes
// with integrated storage (Raft), initialised with one unseal key, joined
// and unsealed, whose nodes a test can kill (SIGKILL) and restart.
//
// The Vault binary is the one `make vault` builds into .bin/vault (pinned
// in deploy/vault/server/go.mod); SWORN_VAULT_BIN overrides it. A missing
// binary fails the test rather than skipping it.
package vaulttest

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sworn-id/sworn/internal/testutil"
)

// RootToken is the dev server's root token.
const RootToken = "sworn-test-root"

// Server is a running Vault dev server.
type Server struct {
	Addr   string // http://127.0.0.1:port, or https:// with StartTLS
	Client *api.Client
	// CACertFile verifies the server's certificate (StartTLS only).
	CACertFile string
	cmd        *exec.Cmd
	logs       *testutil.Buffer // written by exec's copying goroutines, read on failure
}

// Start runs `vault server -dev` on a free loopback port until the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, false)
}

// StartTLS is Start with TLS (`-dev-tls`): Vault makes a CA and a server
// certificate, and Server.CACertFile holds the CA.
func StartTLS(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, true)
}

func start(tb testing.TB, useTLS bool) *Server {
	tb.Helper()
	bin := testutil.Bin(tb, "vault", "SWORN_VAULT_BIN", "vault")
	port := testutil.FreePort(tb)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logs := &testutil.Buffer{}
	args := []string{"server", "-dev", "-dev-root-token-id=" + RootToken, "-dev-listen-address=" + addr, "-dev-no-store-token"}
	s := &Server{Addr: "http://" + addr, logs: logs}
	if useTLS {
		dir := tb.TempDir()
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+dir)
		s.Addr, s.CACertFile = "https://"+addr, filepath.Join(dir, "vault-ca.pem")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Env = append(os.Environ(), "VAULT_LOG_LEVEL=warn", "HOME="+tb.TempDir())
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start vault: %v", err)
	}
	s.cmd = cmd
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	// Vault writes the CA with os.WriteFile, which creates the file before
	// writing it: wait until it holds a whole certificate, not just exists.
	for useTLS {
		if pem, err := os.ReadFile(s.CACertFile); err == nil && x509.NewCertPool().AppendCertsFromPEM(pem) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("vault wrote no CA certificate:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Client = s.NewClient(tb, RootToken)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		h, err := s.Client.Sys().HealthWithContext(ctx)
		cancel()
		if err == nil && h.Initialized && !h.Sealed {
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("vault did not become ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID is the Vault server's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// NewClient returns an API client for the server with the given token.
func (s *Server) NewClient(tb testing.TB, token string) *api.Client {
	tb.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	if s.CACertFile != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACertFile}); err != nil {
			tb.Fatal(err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// Proxy forwards loopback TCP connections to a target. Down closes the
// listener and every open connection (clients get connection refused);
// Hang cuts open connections and then accepts new ones but never answers
// (a paused server: clients wait until their own timeout); Up undoes
// either, on the same address.
type Proxy struct {
	Addr     string // scheme://127.0.0.1:port, the target's scheme
	target   string
	hostport string

	mu    sync.Mutex
	l     net.Listener
	hung  bool
	conns map[net.Conn]struct{}
}

// NewProxy starts a proxy to target ("http://host:port" or
// "https://host:port"; TLS passes through) until the test ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	scheme, host, ok := strings.Cut(target, "://")
	if !ok {
		tb.Fatalf("proxy target %q has no scheme", target)
	}
	hostport := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(tb))
	p := &Proxy{Addr: scheme + "://" + hostport, target: host, hostport: hostport, conns: map[net.Conn]struct{}{}}
	if err := p.Up(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Down)
	return p
}

// Up starts forwarding connections again.
func (p *Proxy) Up() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung {
		p.cutLocked() // the held connections never got an answer
		p.hung = false
	}
	if p.l != nil {
		return nil
	}
	var l net.Listener
	var err error
	for range 50 { // the port may linger briefly after Down
		if l, err = net.Listen("tcp", p.hostport); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	p.l = l
	go p.serve(l)
	return nil
}

// Down refuses new connections and cuts open ones.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		_ = p.l.Close()
		p.l = nil
	}
	p.cutLocked()
}

// Hang cuts open connections and holds new ones open without a byte of
// answer until Up or Down.
func (p *Proxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = true
	p.cutLocked()
}

func (p *Proxy) cutLocked() {
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

func (p *Proxy) serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	p.mu.Lock()
	hung := p.hung
	if hung {
		p.conns[c] = struct{}{} // closed by the next Up, Down or Hang
	}
	p.mu.Unlock()
	if hung {
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.l == nil {
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	splice(c, up)
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// splice copies both ways between c and up until either side ends, then
// closes both, as when a node dies behind a real proxy or balancer: the
// client sees its connection cut, not a half-open one.
func splice(c, up net.Conn) {
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	_ = c.Close()
	_ = up.Close()
}
