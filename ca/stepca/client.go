package stepca

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
)

// client speaks the part of step-ca's HTTP API the backend uses (GET
// /root/<sha256>, /roots, /federation, /provisioners and POST /sign), as
// the client in github.com/smallstep/certificates/ca does, without the
// step-ca server packages that client imports. Every request after the
// root's is verified against that one root.
type client struct {
	base        *url.URL
	fingerprint string // the pinned root's hex SHA-256, if pinned by fingerprint

	mu   sync.Mutex
	http *http.Client // nil until the root is known (pinned by fingerprint)
}

// newClient pins rootFile's certificates at once, or, with a fingerprint,
// the root step-ca serves under it, fetched at the first request: a CA
// that is down at start is then an outage, not a failed start.
func newClient(endpoint, rootFile, fingerprint string) (*client, error) {
	base, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	c := &client{base: base, fingerprint: strings.ToLower(fingerprint)}
	if rootFile == "" {
		return c, nil
	}
	data, err := os.ReadFile(rootFile)
	if err != nil {
		return nil, fmt.Errorf("root_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("root_file %s: no certificate in it", rootFile)
	}
	c.http = pinnedClient(pool)
	return c, nil
}

// pinnedClient trusts pool alone. The transport is http.DefaultTransport's
// (proxy from the environment, dial and TLS handshake timeouts, HTTP/2), as
// step's client's is.
func pinnedClient(pool *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &http.Client{Transport: tr}
}

// httpClient returns the pinned client, fetching the root first if it is
// pinned by fingerprint and not yet known.
func (c *client) httpClient(ctx context.Context) (*http.Client, error) {
	c.mu.Lock()
	hc := c.http
	c.mu.Unlock()
	if hc != nil {
		return hc, nil
	}
	// Fetched outside the lock: a fetch that hangs (a paused step-ca)
	// holds up only its own caller, until its context ends.
	root, err := c.root(ctx)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.http == nil {
		c.http = pinnedClient(pool)
	}
	return c.http, nil
}

// root fetches GET /root/<fingerprint> without verifying the connection,
// as step's bootstrap does, and trusts the answer only if its SHA-256 is
// the pinned fingerprint.
func (c *client) root(ctx context.Context) (*x509.Certificate, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	//nolint:gosec // the answer is checked against the pinned fingerprint below
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	defer tr.CloseIdleConnections()
	var resp struct {
		Root pemCert `json:"ca"`
	}
	if err := c.do(ctx, &http.Client{Transport: tr}, http.MethodGet, &url.URL{Path: "/root/" + c.fingerprint}, nil, &resp); err != nil {
		return nil, err
	}
	if resp.Root.Certificate == nil {
		return nil, errors.New("GET /root: no certificate in the answer")
	}
	if got := fingerprintOf(resp.Root.Certificate); got != c.fingerprint {
		return nil, fmt.Errorf("GET /root: step-ca at %s served a root whose SHA-256 is %s, not the pinned root_fingerprint %s", c.base.Host, got, c.fingerprint)
	}
	return resp.Root.Certificate, nil
}

func fingerprintOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// get and post exchange JSON with step-ca over the pinned connection.
// They return the TLS state, from which a token takes the root's
// fingerprint.
func (c *client) get(ctx context.Context, ref *url.URL, out any) (*tls.ConnectionState, error) {
	hc, err := c.httpClient(ctx)
	if err != nil {
		return nil, err
	}
	var state *tls.ConnectionState
	err = c.do(ctx, hc, http.MethodGet, ref, nil, out, func(r *http.Response) { state = r.TLS })
	return state, err
}

func (c *client) post(ctx context.Context, path string, in, out any) error {
	hc, err := c.httpClient(ctx)
	if err != nil {
		return err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, hc, http.MethodPost, &url.URL{Path: path}, body, out)
}

// do sends one request and decodes a 2xx answer into out, or returns the
// answer as a *statusError. A transport error comes back unwrapped from
// its *url.Error, as step's client returns it (classify tells an outage
// from a bad request by the cause).
func (c *client) do(ctx context.Context, hc *http.Client, method string, ref *url.URL, body []byte, out any, seen ...func(*http.Response)) error {
	u := c.base.ResolveReference(ref)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "sworn")
	req.Header.Set("X-Request-Id", requestID())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("%s %s: %w", method, u.Path, ue.Err)
		}
		return fmt.Errorf("%s %s: %w", method, u.Path, err)
	}
	defer resp.Body.Close()
	for _, f := range seen {
		f(resp)
	}
	if resp.StatusCode >= 400 {
		return readError(method, u.Path, resp)
	}
	// Bounded: GET /root is read before the server is authenticated, and
	// an endless body from whoever answers must not exhaust the agent.
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, u.Path, err)
	}
	if len(data) > maxAnswer {
		return fmt.Errorf("%s %s: the answer is larger than %d bytes, more than step-ca ever sends", method, u.Path, maxAnswer)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, u.Path, err)
	}
	return nil
}

// maxAnswer bounds a step-ca answer; the largest, a page of 100
// provisioners with their encrypted keys, is a few hundred KiB.
const maxAnswer = 4 << 20

// statusError is step-ca's (or a proxy's) answer with an error status.
type statusError struct {
	Status    int
	Message   string
	RequestID string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("step-ca answered %d: %s (request id %s)", e.Status, e.Message, e.RequestID)
}

// StatusCode is the HTTP status, which classify reads.
func (e *statusError) StatusCode() int { return e.Status }

// readError reads step-ca's error body ({"status":…,"message":…}). The
// class comes from the HTTP status, not the body: a proxy's 502 page is
// an outage even though it is not step-ca's JSON.
func readError(method, path string, resp *http.Response) error {
	e := &statusError{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var body struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &body) == nil && body.Message != "" {
		e.Message = body.Message
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return fmt.Errorf("%s %s: %w", method, path, e)
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // UUIDv4, as step's client sends
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// pemCert is a certificate as step-ca's JSON carries it: a PEM string.
type pemCert struct{ *x509.Certificate }

func (p *pemCert) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if s == "" {
		return nil
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("certificate: not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	p.Certificate = cert
	return nil
}

// roots is GET /roots and GET /federation: step-ca's roots and the
// federated ones.
func (c *client) roots(ctx context.Context, path string) ([]*x509.Certificate, error) {
	var resp struct {
		Certificates []pemCert `json:"crts"`
	}
	if _, err := c.get(ctx, &url.URL{Path: path}, &resp); err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, p := range resp.Certificates {
		if p.Certificate != nil {
			certs = append(certs, p.Certificate)
		}
	}
	return certs, nil
}

// signRequest is POST /sign's body (step's api.SignRequest): notAfter is
// a Go duration string, as step's TimeDuration marshals one.
type signRequest struct {
	CSR      string `json:"csr"`
	OTT      string `json:"ott"`
	NotAfter string `json:"notAfter,omitempty"`
}

// sign is POST /sign; it returns the leaf and step-ca's chain as sent.
func (c *client) sign(ctx context.Context, csrDER []byte, ott, notAfter string) (*x509.Certificate, []*x509.Certificate, error) {
	req := signRequest{
		CSR:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		OTT:      ott,
		NotAfter: notAfter,
	}
	var resp struct {
		Leaf  pemCert   `json:"crt"`
		Chain []pemCert `json:"certChain"`
	}
	if err := c.post(ctx, "/sign", req, &resp); err != nil {
		return nil, nil, err
	}
	if resp.Leaf.Certificate == nil {
		return nil, nil, errors.New("POST /sign: no certificate in the answer")
	}
	var chain []*x509.Certificate
	for _, p := range resp.Chain {
		if p.Certificate != nil {
			chain = append(chain, p.Certificate)
		}
	}
	return resp.Leaf.Certificate, chain, nil
}
