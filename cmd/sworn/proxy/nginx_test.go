package proxy_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sworn-id/sworn/internal/testutil"
)

// nginxBin is Debian's nginx, which `make test` installs (.bin/nginx-ok).
const nginxBin = "/usr/sbin/nginx"

// secret is the body of /admin/secret.txt: no request the policy refuses
// may ever get it back.
const secret = "TOP-SECRET-admin-file-3f1c"

// nginx is a real nginx serving a temporary root on a loopback port.
type nginx struct {
	addr      string
	accessLog string
	cmd       *exec.Cmd
	stderr    *strings.Builder
	once      sync.Once
	stopFn    func()
	waitErr   error
}

// startNginx runs nginx as a child process (no daemon, no master process)
// with its prefix, config, pid file and logs in a temporary directory. It
// serves:
//
//	/admin/secret.txt   the secret, as a file from the root
//	/api/orders/        an echo of what nginx saw: method, request line
//	                    URI, normalised $uri, Host, and the forwarded
//	                    headers (underscore variants included, as
//	                    underscores_in_headers is on)
//
// The access log records every request line nginx received. nginx is
// stopped when the test ends; stop may be called earlier to read the
// complete access log.
func startNginx(t *testing.T) *nginx {
	t.Helper()
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skipf("no nginx at %s (%v): `make test` installs Debian's nginx-light (the .bin/nginx-ok target)", nginxBin, err)
	}
	dir := nginxRoot(t)
	addr := testutil.FreeAddr(t)
	n := &nginx{addr: addr, accessLog: filepath.Join(dir, "logs", "access.log"), stderr: &strings.Builder{}}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(fmt.Sprintf(nginxConf, dir, addr, filepath.Join(dir, "www"))), 0o644); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(nginxBin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "logs", "error.log"))
	n.cmd.Stdout, n.cmd.Stderr = n.stderr, n.stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		n.waitErr = n.cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() { n.stop(t) })
	n.stopFn = func() {
		_ = n.cmd.Process.Signal(syscall.SIGQUIT) // graceful: finish requests, flush logs
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
			<-exited
		}
	}
	n.waitListening(t, dir, exited)
	return n
}

// nginxConf is startNginx's configuration: %[1]s is the prefix directory,
// %[2]s the listen address, %[3]s the document root.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/logs/nginx.pid;
error_log %[1]s/logs/error.log info;
events { worker_connections 64; }
http {
	log_format seen '$request_method $request_uri';
	access_log %[1]s/logs/access.log seen;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	underscores_in_headers on;
	server {
		listen %[2]s;
		root %[3]s;
		location / { }
		location /api/orders/ {
			default_type text/plain;
			return 200 "method=$request_method request_uri=$request_uri uri=$uri host=$host xfcc=[$http_x_forwarded_client_cert] xff=[$http_x_forwarded_for] real_ip=[$http_x_real_ip] override=[$http_x_http_method_override]\n";
		}
	}
}
`

// nginxRoot makes nginx's prefix directory: the document root with the
// secret, and the log and temporary directories.
func nginxRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"www/admin", "www/api/orders", "logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "admin", "secret.txt"), []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitListening returns once nginx accepts a connection. A process that
// exits first failed to start (bad config, port taken) and says why on
// stderr and in its error log.
func (n *nginx) waitListening(t *testing.T, dir string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			errLog, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s", n.waitErr, n.stderr, errLog)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s within 10s: %v", n.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends nginx gracefully (so its access log is complete) and waits.
func (n *nginx) stop(t *testing.T) {
	t.Helper()
	n.once.Do(n.stopFn)
}

// requestLines returns the access log: one "METHOD URI" line per request
// nginx received. Call it after stop.
func (n *nginx) requestLines(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(n.accessLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.FieldsFunc(string(data), func(r rune) bool { return r == '\n' })
}

// rawResponse is one response read off the wire.
type rawResponse struct {
	status int
	body   string
}

// rawRequests writes req, byte for byte, on a fresh mTLS connection to
// addr (Go's client would normalise the request line, so attacks are sent
// raw) and reads responses until the server closes the connection.
func rawRequests(t *testing.T, conf *tls.Config, addr, req string) []rawResponse {
	t.Helper()
	c, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []rawResponse
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if len(out) == 0 {
				t.Fatalf("no response to %q: %v", req, err)
			}
			return out
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("reading the body of the response to %q: %v", req, err)
		}
		out = append(out, rawResponse{status: resp.StatusCode, body: string(body)})
		if resp.Close {
			return out
		}
	}
}
