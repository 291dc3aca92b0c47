// Command watcher is TestSoak's workload: it holds a go-spiffe X.509
// context watch on the Workload API and checks every update it is sent
// (the SVID is valid now, chains to the bundle sent with it, and has the
// expected SPIFFE ID), and once a second that the SVID it holds has not
// expired. It prints one soak.Event per update, violation and watch error
// as a JSON line on stdout, and exits when stdin closes or on SIGTERM.
//
// Usage: watcher -addr unix:///path/workload.sock -id spiffe://td/uid/N
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/internal/soak"
)

func main() {
	addr := flag.String("addr", "", "Workload API address (unix:///path)")
	id := flag.String("id", "", "the SPIFFE ID every SVID must have")
	flag.Parse()
	want, err := spiffeid.FromString(*id)
	if err != nil {
		fmt.Fprintln(os.Stderr, "watcher:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	go func() { // the test closes stdin to stop us
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	w := &watcher{want: want, out: json.NewEncoder(os.Stdout)}
	go w.checkHeld(ctx)
	err = workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr(*addr))
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "watcher:", err)
		os.Exit(1)
	}
}

type watcher struct {
	want spiffeid.ID

	mu   sync.Mutex
	out  *json.Encoder
	held *x509svid.SVID // the SVID of the last update
	told string         // serial of the held SVID already reported expired
}

func (w *watcher) emit(ev soak.Event) {
	ev.At = time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.out.Encode(ev)
}

// OnX509ContextUpdate checks the update and reports it.
func (w *watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	now := time.Now()
	if len(c.SVIDs) != 1 {
		w.emit(soak.Event{Kind: "violation", Msg: fmt.Sprintf("update holds %d SVIDs, want 1", len(c.SVIDs))})
		if len(c.SVIDs) == 0 {
			return
		}
	}
	svid := c.DefaultSVID()
	leaf := svid.Certificates[0]
	ev := soak.Event{
		Kind: "update", ID: svid.ID.String(), Serial: leaf.SerialNumber.Text(16),
		Issuer: hex.EncodeToString(leaf.AuthorityKeyId), NotAfter: leaf.NotAfter,
	}
	if b, err := c.Bundles.GetX509BundleForTrustDomain(w.want.TrustDomain()); err == nil {
		ev.Authorities = len(b.X509Authorities())
	}
	for _, msg := range check(svid, c, w.want, now) {
		w.emit(soak.Event{Kind: "violation", ID: ev.ID, Serial: ev.Serial, Msg: msg})
	}
	w.mu.Lock()
	if prev := w.held; prev != nil && prev.Certificates[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		ev.Replaced = prev.Certificates[0].NotAfter.Sub(now)
	}
	w.held = svid
	w.mu.Unlock()
	w.emit(ev)
}

// check returns what is wrong with svid as handed over at now.
func check(svid *x509svid.SVID, c *workloadapi.X509Context, want spiffeid.ID, now time.Time) []string {
	var bad []string
	leaf := svid.Certificates[0]
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		bad = append(bad, fmt.Sprintf("SVID %s is not valid now (%s): valid %s to %s",
			leaf.SerialNumber.Text(16), now.Format(time.RFC3339Nano), leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339)))
	}
	if svid.ID != want {
		bad = append(bad, fmt.Sprintf("SVID has ID %s, want %s", svid.ID, want))
	}
	if _, _, err := x509svid.Verify(svid.Certificates, c.Bundles); err != nil {
		bad = append(bad, fmt.Sprintf("SVID %s does not chain to the bundle sent with it: %v", leaf.SerialNumber.Text(16), err))
	}
	return bad
}

// OnX509ContextWatchError reports a failed stream; go-spiffe reconnects.
func (w *watcher) OnX509ContextWatchError(err error) {
	w.emit(soak.Event{Kind: "watch_error", Msg: err.Error()})
}

// checkHeld reports, once per SVID, an SVID held past its expiry: the
// agent must replace it before then even if no other update comes.
func (w *watcher) checkHeld(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			w.mu.Lock()
			held := w.held
			var serial string
			expired := held != nil && !now.Before(held.Certificates[0].NotAfter)
			if expired {
				serial = held.Certificates[0].SerialNumber.Text(16)
				expired = serial != w.told
				w.told = serial
			}
			w.mu.Unlock()
			if expired {
				w.emit(soak.Event{Kind: "violation", ID: held.ID.String(), Serial: serial,
					Msg: fmt.Sprintf("held SVID %s expired at %s and was not replaced", serial, held.Certificates[0].NotAfter.Format(time.RFC3339))})
			}
		}
	}
}
