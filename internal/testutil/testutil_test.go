package testutil_test

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sworn-id/sworn/internal/testutil"
)

// fatalTB records a Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEventuallyFailsNamingWhatItWaitedFor(t *testing.T) {
	tb := &fatalTB{TB: t}
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		testutil.EventuallyWithin(tb, 50*time.Millisecond, "the moon to turn blue", func() bool { calls++; return false })
	}()
	<-done
	if want := "timed out after 50ms waiting for the moon to turn blue"; tb.msg != want {
		t.Fatalf("Fatalf(%q), want %q", tb.msg, want)
	}
	if calls < 2 {
		t.Fatalf("cond polled %d times, want it polled until the deadline", calls)
	}
}

func TestEventuallyReturnsOnceCondHolds(t *testing.T) {
	calls := 0
	testutil.Eventually(t, "the third poll", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Fatalf("cond polled %d times after it held, want 3", calls)
	}
}

func TestBufferIsSafeToReadWhileWritten(t *testing.T) {
	var b testutil.Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("x", 400) {
		t.Fatalf("buffer holds %d bytes, want 400", len(got))
	}
	bs := b.Bytes()
	bs[0] = 'y'
	if b.String()[0] != 'x' {
		t.Fatal("Bytes returned the buffer's own memory, not a copy")
	}
}

func TestIssuedCertificateVerifiesAgainstItsCA(t *testing.T) {
	ca := testutil.NewCA(t, nil)
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA: IsCA=%v KeyUsage=%v", ca.Cert.IsCA, ca.Cert.KeyUsage)
	}
	id, _ := url.Parse("spiffe://example.org/web")
	leaf := ca.Issue(t, &x509.Certificate{URIs: []*url.URL{id}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots}); err != nil {
		t.Fatalf("issued certificate does not verify against its CA: %v", err)
	}
	if other := testutil.NewCA(t, nil); other.Cert.SerialNumber.Cmp(ca.Cert.SerialNumber) == 0 {
		t.Fatal("two CAs got the same serial number")
	}
}

func TestFreeAddrIsListenable(t *testing.T) {
	l, err := net.Listen("tcp", testutil.FreeAddr(t))
	if err != nil {
		t.Fatalf("listen on a free address: %v", err)
	}
	l.Close()
}
