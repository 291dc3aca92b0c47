package local_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/internal/testutil"
)

// caFile returns the one CA file in dir.
func caFile(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "ca-*.pem"))
	if len(files) != 1 {
		t.Fatalf("want one CA file in %s, got %v", dir, files)
	}
	return files[0]
}

// rewriteBlocks rewrites the PEM blocks of path through edit, keeping mode 0600.
func rewriteBlocks(t *testing.T, path string, edit func(b *pem.Block) *pem.Block) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b = edit(b); b != nil {
			out = append(out, pem.EncodeToMemory(b)...)
		}
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func pkcs8(t *testing.T, kt ca.KeyType) []byte {
	t.Helper()
	k, err := kt.Generate()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// A CA file whose key is not its certificate's would let the agent say
// ready while every signature fails: it is refused at start, naming the file.
func TestLoadRefusesKeysThatDoNotFitTheCA(t *testing.T) {
	tests := []struct {
		name    string
		replace string // "Use" header of the key block to replace: "" the CA key, "jwt-svid" the JWT key
		keyType ca.KeyType
		want    string
	}{
		{name: "CA key of another key pair", replace: "", keyType: ca.KeyECP256, want: "private key does not match its certificate"},
		{name: "CA key of another type", replace: "", keyType: ca.KeyRSA2048, want: "private key does not match its certificate"},
		{name: "JWT key that cannot sign ES256", replace: "jwt-svid", keyType: ca.KeyRSA2048, want: "JWT-SVID key is not an EC P-256 key"},
		{name: "JWT key on another curve", replace: "jwt-svid", keyType: ca.KeyECP384, want: "JWT-SVID key is not an EC P-256 key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			newCA(t, local.Config{Dir: dir})
			path := caFile(t, dir)
			rewriteBlocks(t, path, func(b *pem.Block) *pem.Block {
				if b.Type == "PRIVATE KEY" && b.Headers["Use"] == tt.replace {
					b.Bytes = pkcs8(t, tt.keyType)
				}
				return b
			})
			_, err := local.New(local.Config{TrustDomain: td, Dir: dir})
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, path, tt.want)
			}
		})
	}
}

func TestLoadRefusesCAFileNamedForAnotherCA(t *testing.T) {
	dir := t.TempDir()
	newCA(t, local.Config{Dir: dir})
	path := caFile(t, dir)
	renamed := filepath.Join(dir, "ca-0123.pem")
	if err := os.Rename(path, renamed); err != nil {
		t.Fatal(err)
	}
	_, err := local.New(local.Config{TrustDomain: td, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), renamed) || !strings.Contains(err.Error(), "file name does not match") {
		t.Fatalf("err = %v, want one naming %s", err, renamed)
	}
}

// A lost or wrong state.json must neither go unnoticed nor cut trust: the
// newest CA workloads already trust is activated, and a warning says so.
func TestMissingOrWrongStateActivatesNewestCAWithWarning(t *testing.T) {
	tests := []struct {
		name  string
		state func(t *testing.T, path string)
		want  []string // in the warning
	}{
		{name: "missing", state: func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"missing"}},
		{name: "names an unknown CA", state: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(`{"active":"00ff"}`+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: []string{`names active CA "00ff"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := newCA(t, local.Config{Dir: dir})
			before := first.Authorities()
			statePath := filepath.Join(dir, "state.json")
			tt.state(t, statePath)

			var logs bytes.Buffer
			c := newCA(t, local.Config{Dir: dir, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			after := c.Authorities()
			if after.Signing != before.Signing || len(after.X509) != 1 {
				t.Fatalf("signing CA %s with %d CAs, want the persisted %s alone (no new CA that workloads do not trust yet)", after.Signing, len(after.X509), before.Signing)
			}
			var warning string
			dec := json.NewDecoder(&logs)
			for {
				var rec struct{ Level, Msg string }
				if err := dec.Decode(&rec); err != nil {
					break
				}
				if rec.Level == "WARN" {
					warning = rec.Msg
				}
			}
			want := append([]string{statePath, "activating the newest", before.Signing}, tt.want...)
			for _, w := range want {
				if !strings.Contains(warning, w) {
					t.Errorf("warning %q lacks %q", warning, w)
				}
			}
			data, err := os.ReadFile(statePath)
			if err != nil || !strings.Contains(string(data), before.Signing) {
				t.Fatalf("state.json after the decision: %q, %v; want it to record %s", data, err, before.Signing)
			}
		})
	}
}

// A lost CA file must not silently put a new root in its place that signs
// before workloads trust it: the new CA is published first and signs only
// a minute later, and a warning names the missing file.
func TestMissingCAFilePublishesNewCABeforeItSigns(t *testing.T) {
	dir := t.TempDir()
	clk := clocktesting.NewFakeClock(t0)
	first := newCA(t, local.Config{Dir: dir, Clock: clk}).Authorities()
	lost := caFile(t, dir)
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}

	logs := &testutil.Buffer{}
	c := newCA(t, local.Config{Dir: dir, Clock: clk, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	got := c.Authorities()
	if len(got.X509) != 1 || got.X509[0].Equal(first.X509[0]) || got.Signing != "" {
		t.Fatalf("after losing %s: %d CAs, signing %q; want one new CA, published and not signing yet", lost, len(got.X509), got.Signing)
	}
	id := spiffeid.RequireFromString("spiffe://example.org/a")
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: id, Key: key, TTL: time.Hour}); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("signing right after publishing the new CA: err = %v, want ca.ErrUnavailable", err)
	}
	if warn := logs.String(); !strings.Contains(warn, `"level":"WARN"`) || !strings.Contains(warn, lost) {
		t.Fatalf("no warning naming %s in:\n%s", lost, warn)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	changed := c.Changed()
	testutil.Eventually(t, "the maintenance loop to wait on the clock", clk.HasWaiters)
	clk.Step(time.Minute)
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the published CA was not activated a minute later")
	}
	leaf := sign(t, c, id, time.Hour)[0]
	if err := leaf.CheckSignatureFrom(got.X509[0]); err != nil {
		t.Fatalf("a minute later the published CA does not sign: %v", err)
	}
}
