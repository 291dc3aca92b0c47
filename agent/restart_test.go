package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/internal/testutil"
)

// A second agent on the same data dir is refused before it writes there,
// naming the agent that holds it; once that one stops, the data dir is
// free again.
func TestSecondAgentOnTheSameDataDirIsRefusedBeforeWritingAnything(t *testing.T) {
	cfg := newConfig(t)
	first := startAgent(t, cfg)
	bundlePath := filepath.Join(cfg.DataDir, "bundle.pem")
	before, data := statAndRead(t, bundlePath)

	second := *cfg // other sockets, same data dir
	dir := filepath.Dir(cfg.SocketPath)
	second.SocketPath, second.AdminSocketPath = filepath.Join(dir, "w2.sock"), filepath.Join(dir, "a2.sock")
	_, err := agent.New(&second, nil)
	want := fmt.Sprintf("agent: data dir %s is in use by another sworn agent (pid %d); stop it or use another data_dir", cfg.DataDir, os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("second agent on the same data dir: %v, want %q", err, want)
	}
	after, again := statAndRead(t, bundlePath)
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) || !bytes.Equal(data, again) {
		t.Fatal("the refused agent rewrote bundle.pem")
	}

	if err := first.Stop(t); err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(&second, nil)
	if err != nil {
		t.Fatalf("the data dir is still locked after the first agent stopped: %v", err)
	}
	a.Close()
}

func statAndRead(t *testing.T, path string) (os.FileInfo, []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi, data
}

// Temp files a crash left between renameio's write and its rename are
// removed at start, each logged; files that are not such temp files stay.
func TestStartRemovesTempFilesOfInterruptedWrites(t *testing.T) {
	cfg := newConfig(t)
	a, err := agent.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	planted := []string{
		filepath.Join(cfg.DataDir, ".bundle.pem8674665223082153551"),
		filepath.Join(cfg.DataDir, "svids", ".0123456789abcdef0123456789abcdef.pem42"),
	}
	kept := filepath.Join(cfg.DataDir, "svids", "notes.pem1")
	for _, f := range append(planted, kept) {
		writeFile(t, f, 0o600)
	}
	logs := runLogged(t, cfg)
	for _, f := range planted {
		if _, err := os.Lstat(f); !os.IsNotExist(err) {
			t.Errorf("temp file %s left in place (%v)", f, err)
		}
		if line := fmt.Sprintf(`"msg":"removed a temp file left by an interrupted write","file":%q`, f); !strings.Contains(logs.String(), line) {
			t.Errorf("no log line %s", line)
		}
	}
	if _, err := os.Lstat(kept); err != nil {
		t.Errorf("removed %s, which is no temp file: %v", kept, err)
	}
}

// Restarted while Vault is down and with bundle.pem garbled or truncated,
// the agent names the bad file in an error, keeps every persisted SVID,
// and serves them with the trust anchors kept in their files, which the
// SVIDs verify against; none is deleted for want of a bundle. A file cut
// short after a whole certificate is as bad as a garbled one: it is not
// taken for a smaller bundle.
func TestRestartWithCADownAndCorruptBundleServesPersistedSVIDs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(good []byte) []byte
	}{
		{name: "garbled", corrupt: func([]byte) []byte {
			return []byte("-----BEGIN CERTIFICATE-----\ngarbled\n-----END CERTIFICATE-----\n")
		}},
		{name: "truncated after a whole certificate", corrupt: func(good []byte) []byte {
			return append(append([]byte{}, good...), good[:len(good)/2]...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { restartWithCorruptBundle(t, tc.corrupt) })
	}
}

func restartWithCorruptBundle(t *testing.T, corrupt func(good []byte) []byte) {
	t.Helper()
	cfg, proxy, svid := servedBeforeRestart(t, "intermediate")
	bundlePath := filepath.Join(cfg.DataDir, "bundle.pem")
	good, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundlePath, corrupt(good), 0o644); err != nil {
		t.Fatal(err)
	}

	proxy.Down()
	logs := runLogged(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	x509ctx, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+cfg.SocketPath))
	if err != nil {
		t.Fatalf("fetch from an agent restarted with Vault down and bundle.pem corrupt: %v\nlogs:\n%s", err, logs)
	}
	again := x509ctx.DefaultSVID()
	if again.Certificates[0].SerialNumber.Cmp(svid.Certificates[0].SerialNumber) != 0 {
		t.Fatal("the persisted SVID was not served")
	}
	if _, _, err := x509svid.Verify(again.Certificates, x509ctx.Bundles); err != nil {
		t.Fatalf("the served SVID does not verify against the served bundle: %v", err)
	}
	want := fmt.Sprintf(`"level":"ERROR","msg":"CA unreachable at start, and the last known trust bundle %s cannot be used: bundle: %s: `, bundlePath, bundlePath)
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("no error naming the bad bundle file (%s); logs:\n%s", want, logs)
	}
	if files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "svids", "*.pem")); len(files) != 1 {
		t.Fatalf("persisted SVID files: %v, want the one kept", files)
	}
}

// A kill -9 between a CA activation and the end of the re-issue it causes
// must not leave SVIDs from the old CA served until their half-life: the
// agent records the CA every SVID was last re-issued under only once the
// re-issue is complete, and a restart that finds another CA signing
// re-issues them all. Here the activation happens with the agent down (as
// after a kill right after `rotate ca --activate` wrote the CA's state).
func TestReissueAfterACAChangeSurvivesARestart(t *testing.T) {
	cfg := newConfig(t)
	first := startAgent(t, cfg)
	before, err := newSource(t, first).GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(cfg.DataDir, "signing-ca")
	testutil.Eventually(t, "the first start to record the signing CA", func() bool {
		data, err := os.ReadFile(record)
		return err == nil && len(data) > 1
	})
	if err := first.Stop(t); err != nil {
		t.Fatal(err)
	}

	lc := cfg.CA.Local
	lc.TrustDomain, lc.Dir = td, filepath.Join(cfg.DataDir, "ca")
	c, err := local.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PrepareCA(context.Background()); err != nil {
		t.Fatal(err)
	}
	activated, err := c.ActivateCA(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	second := startAgent(t, cfg)
	src := newSource(t, second)
	testutil.Eventually(t, "an SVID from the CA activated while the agent was down", func() bool {
		s, err := src.GetX509SVID()
		return err == nil && s.Certificates[0].SerialNumber.Cmp(before.Certificates[0].SerialNumber) != 0 &&
			s.Certificates[0].CheckSignatureFrom(activated.Certificate) == nil
	})
	testutil.Eventually(t, "the record to name the new signing CA", func() bool {
		data, err := os.ReadFile(record)
		return err == nil && strings.TrimSpace(string(data)) == activated.ID
	})
}
