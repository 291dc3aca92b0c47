package proxy_test

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/proxy"
	"github.com/sworn-id/sworn/trust"
)

// benchTargets starts, with the same SVIDs, a direct mTLS server and a
// sworn proxy in front of a plain server; both greet each connection with
// one byte and then discard what they read.
func benchTargets(b *testing.B) (direct, proxied string, client *tls.Config) {
	b.Helper()
	a := startAgent(b)
	serverSrc, clientSrc := as(b, a, "/server"), as(b, a, "/client-ok")
	allowClient := trust.NewGuard(mustPolicy(b, "spiffe://example.org/client-ok"))
	client = trust.ClientConfig(clientSrc, trust.NewGuard(mustPolicy(b, "spiffe://example.org/server")))

	greetAndDiscard := func(c net.Conn) {
		defer c.Close()
		if tc, ok := c.(*tls.Conn); ok && tc.Handshake() != nil {
			return
		}
		_, _ = c.Write([]byte{1})
		// An application reading with its own 64 KiB buffer (io.Discard
		// would read 8 KiB at a time, a cost of the sink, not the proxy).
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}
	serve := func(l net.Listener) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go greetAndDiscard(c)
		}
	}
	dl, err := tls.Listen("tcp", "127.0.0.1:0", trust.ServerConfig(serverSrc, allowClient))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dl.Close() })
	go serve(dl)

	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pl.Close() })
	go serve(pl)
	proxied = runProxy(b, proxy.Config{Mode: proxy.ModeServer, Target: pl.Addr().String(), Source: serverSrc, Guard: allowClient})
	return dl.Addr().String(), proxied, client
}

func BenchmarkHandshakes(b *testing.B) {
	direct, proxied, client := benchTargets(b)
	for _, tt := range []struct{ name, addr string }{{"direct", direct}, {"proxy", proxied}} {
		b.Run(tt.name, func(b *testing.B) {
			one := make([]byte, 1)
			for b.Loop() {
				c, err := tls.Dial("tcp", tt.addr, client)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, one); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}

func BenchmarkThroughput(b *testing.B) {
	direct, proxied, client := benchTargets(b)
	chunk := make([]byte, 64<<10)
	for _, tt := range []struct{ name, addr string }{{"direct", direct}, {"proxy", proxied}} {
		b.Run(tt.name, func(b *testing.B) {
			c, err := tls.Dial("tcp", tt.addr, client)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
