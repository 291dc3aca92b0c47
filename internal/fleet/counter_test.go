package fleet

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// kind is what a Vault request is for.
type kind int

const (
	kindSign         kind = iota // <mount>/sign/<role>: one leaf SVID
	kindIntermediate             // <mount>/root/sign-intermediate
	kindRead                     // issuer and bundle reads
	kindAuth                     // logins and token renewals
	kindOther
	nKinds
)

var kindNames = [nKinds]string{"sign", "intermediate", "read", "auth", "other"}

// classify names the kind of a request to Vault by its path, for the PKI
// mount at mount.
func classify(mount, path string) kind {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		return kindOther
	}
	if strings.HasPrefix(rest, "auth/") {
		return kindAuth
	}
	pki, ok := strings.CutPrefix(rest, mount+"/")
	switch {
	case !ok:
		return kindOther
	case strings.HasPrefix(pki, "sign/"):
		return kindSign
	case pki == "root/sign-intermediate":
		return kindIntermediate
	case pki == "issuers", strings.HasPrefix(pki, "issuer/"), pki == "config/issuers",
		pki == "ca", pki == "ca/pem", pki == "ca_chain", pki == "cert/ca_chain", strings.HasPrefix(pki, "cert/"):
		return kindRead
	}
	return kindOther
}

// bucket is one second of requests.
type bucket struct {
	n      [nKinds]int
	non2xx int
}

// counter is a reverse proxy to Vault that counts every request it
// forwards, per second since it started, by kind, and every answer that
// is not 2xx.
type counter struct {
	Addr  string // http://127.0.0.1:port
	mount string
	start time.Time

	mu      sync.Mutex
	buckets map[int]*bucket
	bad     []string // the first non-2xx answers, for the report
}

// newCounter serves a counting proxy to Vault at target until the test ends.
func newCounter(t *testing.T, target, mount string) *counter {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{Addr: "http://" + l.Addr().String(), mount: mount, start: time.Now(), buckets: map[int]*bucket{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	rp.ErrorLog = log.New(io.Discard, "", 0) // a failed forward is answered 502 and counted as a failure
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		rp.ServeHTTP(sw, r)
		c.record(r, sw.code)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c
}

// record counts one request, in the second it was answered.
func (c *counter) record(r *http.Request, code int) {
	sec := int(time.Since(c.start) / time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buckets[sec]
	if b == nil {
		b = &bucket{}
		c.buckets[sec] = b
	}
	b.n[classify(c.mount, r.URL.Path)]++
	if code < 200 || code > 299 {
		b.non2xx++
		if len(c.bad) < 20 {
			c.bad = append(c.bad, fmt.Sprintf("%s %s: %d", r.Method, r.URL.Path, code))
		}
	}
}

// second is the bucket index of t.
func (c *counter) second(t time.Time) int { return int(t.Sub(c.start) / time.Second) }

// window sums and peaks the buckets of seconds [from, to).
type window struct {
	seconds int
	total   [nKinds]int
	peak    [nKinds]int
	peakAt  [nKinds]int // the peak's second, from the window's start
	non2xx  int
}

func (c *counter) window(from, to int) window {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := window{seconds: to - from}
	for s := from; s < to; s++ {
		b := c.buckets[s]
		if b == nil {
			continue
		}
		w.non2xx += b.non2xx
		for k := range nKinds {
			w.total[k] += b.n[k]
			if b.n[k] > w.peak[k] {
				w.peak[k], w.peakAt[k] = b.n[k], s-from
			}
		}
	}
	return w
}

// all is the window over every second so far.
func (c *counter) all() window { return c.window(0, c.second(time.Now())+1) }

// badAnswers lists the first non-2xx answers.
func (c *counter) badAnswers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.bad...)
}

// series is the count of kind k per second over [from, to), for the report.
func (c *counter) series(k kind, from, to int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int, 0, to-from)
	for s := from; s < to; s++ {
		if b := c.buckets[s]; b != nil {
			out = append(out, b.n[k])
		} else {
			out = append(out, 0)
		}
	}
	return out
}

// rate is w's mean of kind k per second.
func (w window) rate(k kind) float64 {
	if w.seconds <= 0 {
		return 0
	}
	return float64(w.total[k]) / float64(w.seconds)
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
