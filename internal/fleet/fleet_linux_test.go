package fleet

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// params size the fleet: see the package doc.
type params struct {
	agents, identities int
	ttl                time.Duration
	rate               int // rotation.max_per_second
	bundleRefresh      time.Duration
	full               bool // measure a steady-state window and print the figures
	modes              []string
}

func fleetParams(t *testing.T) params {
	t.Helper()
	p := params{agents: 3, identities: 10, ttl: 10 * time.Minute, rate: 2, bundleRefresh: time.Second, modes: []string{"sign", "intermediate"}}
	if os.Getenv("FLEET_AGENTS")+os.Getenv("FLEET_IDENTITIES")+os.Getenv("FLEET_TTL") != "" {
		// The agents' defaults: cache.DefaultRemoteMaxPerSecond and
		// vault.DefaultBundleRefresh.
		p = params{agents: 50, identities: 200, ttl: 5 * time.Minute, rate: 20, bundleRefresh: vault.DefaultBundleRefresh, full: true, modes: p.modes}
	}
	p.agents = envInt(t, "FLEET_AGENTS", p.agents, 1, 500)
	p.identities = envInt(t, "FLEET_IDENTITIES", p.identities, 1, 5000)
	if s := os.Getenv("FLEET_TTL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Minute {
			t.Fatalf("FLEET_TTL=%q: want a duration of 1m or more (the least svid.ttl allows)", s)
		}
		p.ttl = d
	}
	if s := os.Getenv("FLEET_MODES"); s != "" {
		p.modes = strings.Split(s, ",")
	}
	return p
}

func envInt(t *testing.T, name string, def, lo, hi int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		t.Fatalf("%s=%q: want %d to %d", name, s, lo, hi)
	}
	return n
}

// TestFleet runs the fleet through a CA change in each mode and checks
// what the package doc says.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet: skipped in -short mode (it starts Vault and agent processes); make test runs the reduced fleet")
	}
	p := fleetParams(t)
	base := testutil.ShortTempDir(t, "fleet")
	// Traversable, as a socket's directories are in production (else
	// each agent warns that other uids cannot reach its socket).
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildSworn(t, base)
	for _, mode := range p.modes {
		t.Run(mode, func(t *testing.T) {
			r := runMode(t, p, bin, filepath.Join(base, mode), mode)
			r.check(t)
			if p.full || testing.Verbose() {
				r.print(t)
			}
		})
	}
}

// fleet is one mode's Vault, counter, agents and watches.
type fleet struct {
	t      *testing.T
	p      params
	bin    string
	mode   string
	srv    *vaulttest.Server
	ctr    *counter
	agents []*agentProc
	ws     []*watch
}

// start brings up Vault (set up by `sworn vault setup`), the counter and
// the agents, and waits until each is ready.
func start(t *testing.T, p params, bin, base, mode string) *fleet {
	t.Helper()
	f := &fleet{t: t, p: p, bin: bin, mode: mode, srv: vaulttest.Start(t)}
	args := []string{"vault", "setup", "--trust-domain", trustDomain.Name(), "--auth-method", "approle"}
	if mode == "intermediate" {
		args = append(args, "--intermediate")
	}
	swornCmd(t, bin, f.srv, args...)
	roleID := readRoleID(t, f.srv)
	f.ctr = newCounter(t, f.srv.Addr, vault.DefaultPKIMount)
	spec := agentSpec{bin: bin, vaultAddr: f.ctr.Addr, mode: mode, ttl: p.ttl, rate: p.rate,
		bundleRefresh: p.bundleRefresh, identities: p.identities}
	if p.full && mode == string(vault.ModeIntermediate) {
		spec.rate = 0 // the agents' default in intermediate mode: no cap, Vault is not called per SVID
	}
	for i := range p.agents {
		dir := filepath.Join(base, "a"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil { // the secret ID inside is 0600
			t.Fatal(err)
		}
		f.agents = append(f.agents, newAgent(t, base, i, spec, newSecretID(t, f.srv, roleID, dir)))
	}
	for _, a := range f.agents {
		a.waitReady(2 * time.Minute)
	}
	return f
}

// rotate publishes a new Vault issuer with `sworn ca rotate` and returns it.
func (f *fleet) rotate() vault.Issuer {
	f.t.Helper()
	out := swornCmd(f.t, f.bin, f.srv, "ca", "rotate", "--backend", "vault", "--trust-domain", trustDomain.Name(), "-o", "json")
	var rep struct {
		CAs []struct {
			ID string `json:"id"`
		} `json:"cas"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.CAs) != 1 {
		f.t.Fatalf("sworn ca rotate -o json: %v\n%s", err, out)
	}
	iss, err := vault.NewAdmin(f.srv.Client, "", "").Issuers(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	for _, i := range iss {
		if i.ID == rep.CAs[0].ID {
			return i
		}
	}
	f.t.Fatalf("issuer %s from sworn ca rotate is not in Vault", rep.CAs[0].ID)
	return vault.Issuer{}
}

// loadavg is /proc/loadavg's 1-minute figure.
func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return "?"
	}
	return fields[0]
}
