package vaulttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sworn-id/sworn/internal/testutil"
)

// Cluster is a Vault HA cluster with integrated storage (Raft) on loopback:
// real `vault server` processes, initialised with one unseal key, every
// node unsealed and a voter, one of them active.
type Cluster struct {
	Nodes []*Node
	// RootToken is the root token `vault operator init` returned.
	RootToken string
	// UnsealKey is the only key share (threshold 1).
	UnsealKey string
	bin       string
}

// Node is one server of a Cluster.
type Node struct {
	ID   string // raft node_id: node1, node2, …
	Addr string // http://127.0.0.1:port, the API address

	clusterAddr string // 127.0.0.1:port, the raft and forwarding address
	config      string // the HCL file
	cmd         *exec.Cmd
	exited      chan struct{} // closed when cmd has ended
	logs        *testutil.Buffer
}

// nodeConfig is a node's server configuration. performance_multiplier 1
// is the setting HashiCorp recommends for production and makes elections
// take about a second instead of five; autopilot looks for joined nodes to
// promote to voters every second instead of every ten; mlock is off as in
// any container.
const nodeConfig = `storage "raft" {
  path                   = %q
  node_id                = %q
  performance_multiplier = 1
  autopilot_reconcile_interval = "1s"
  autopilot_update_interval    = "500ms"
}
listener "tcp" {
  address         = %q
  cluster_address = %q
  tls_disable     = true
}
api_addr      = %q
cluster_addr  = %q
disable_mlock = true
`

// StartCluster runs an n-node Raft cluster until the test ends: node 1 is
// initialised and unsealed, the others join it and are unsealed, and it
// returns once every node is an unsealed voter and one is active.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{bin: testutil.Bin(tb, "vault", "SWORN_VAULT_BIN", "vault")}
	for i := range n {
		c.Nodes = append(c.Nodes, newNode(tb, i+1))
	}
	tb.Cleanup(func() {
		for i := range c.Nodes {
			c.Kill(i)
		}
	})
	for i := range c.Nodes {
		c.start(tb, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.bootstrap(ctx); err != nil {
		tb.Fatalf("vault cluster: %v\n%s", err, c.Logs())
	}
	c.WaitReady(tb)
	return c
}

func newNode(tb testing.TB, i int) *Node {
	tb.Helper()
	dir := tb.TempDir()
	n := &Node{ID: fmt.Sprintf("node%d", i), Addr: "http://" + testutil.FreeAddr(tb), clusterAddr: testutil.FreeAddr(tb), logs: &testutil.Buffer{}}
	n.config = filepath.Join(dir, "vault.hcl")
	api := n.Addr[len("http://"):]
	hcl := fmt.Sprintf(nodeConfig, filepath.Join(dir, "raft"), n.ID, api, n.clusterAddr, n.Addr, "https://"+n.clusterAddr)
	if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(n.config, []byte(hcl), 0o600); err != nil {
		tb.Fatal(err)
	}
	return n
}

// start runs node i's server process.
func (c *Cluster) start(tb testing.TB, i int) {
	tb.Helper()
	n := c.Nodes[i]
	cmd := exec.Command(c.bin, "server", "-config="+n.config)
	cmd.Stdout, cmd.Stderr = n.logs, n.logs
	cmd.Env = append(os.Environ(), "VAULT_LOG_LEVEL=warn", "HOME="+filepath.Dir(n.config))
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start vault %s: %v", n.ID, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(n.exited)
	}()
}

// bootstrap initialises node 1, unseals it, and joins and unseals the rest.
func (c *Cluster) bootstrap(ctx context.Context) error {
	first := c.client(0, "")
	var init *api.InitResponse
	err := c.retry(ctx, func() (err error) {
		init, err = first.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		return err
	})
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	c.RootToken, c.UnsealKey = init.RootToken, init.Keys[0]
	if err := c.unseal(ctx, 0); err != nil {
		return err
	}
	root := c.client(0, c.RootToken)
	// Autopilot makes a joining node a voter only after it has been
	// healthy this long (10s by default); a cluster whose followers are
	// not voters yet has no quorum without its leader.
	err = c.retry(ctx, func() error {
		_, err := root.Logical().WriteWithContext(ctx, "sys/storage/raft/autopilot/configuration", map[string]any{"server_stabilization_time": "1s"})
		return err
	})
	if err != nil {
		return fmt.Errorf("autopilot configuration: %w", err)
	}
	for i := range c.Nodes[1:] {
		cl := c.client(i+1, "")
		err := c.retry(ctx, func() error {
			_, err := cl.Sys().RaftJoinWithContext(ctx, &api.RaftJoinRequest{LeaderAPIAddr: c.Nodes[0].Addr})
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: raft join: %w", c.Nodes[i+1].ID, err)
		}
		if err := c.unseal(ctx, i+1); err != nil {
			return err
		}
	}
	return nil
}

// unseal gives node i the key and waits until it reports unsealed.
func (c *Cluster) unseal(ctx context.Context, i int) error {
	cl := c.client(i, "")
	err := c.retry(ctx, func() error {
		st, err := cl.Sys().UnsealWithContext(ctx, c.UnsealKey)
		if err == nil && st.Sealed {
			err = fmt.Errorf("still sealed")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: unseal: %w", c.Nodes[i].ID, err)
	}
	return nil
}

// retry calls f every 50ms until it succeeds, ctx ends or a server
// process has exited (a bad configuration).
func (c *Cluster) retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		for _, n := range c.Nodes {
			select {
			case <-n.exited:
				return fmt.Errorf("%s exited: %w", n.ID, err)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// client is an API client for node i with token (none if empty).
func (c *Cluster) client(i int, token string) *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address = c.Nodes[i].Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 5 * time.Second
	cl, err := api.NewClient(cfg)
	if err != nil {
		panic(err) // only a malformed address fails, and ours are not
	}
	cl.ClearToken()
	if token != "" {
		cl.SetToken(token)
	}
	return cl
}

// Client returns an API client for node i with the root token.
func (c *Cluster) Client(i int) *api.Client { return c.client(i, c.RootToken) }

// Addrs returns the nodes' API addresses, in node order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// Logs returns every node's output, for a failure message.
func (c *Cluster) Logs() string {
	var s string
	for _, n := range c.Nodes {
		s += fmt.Sprintf("--- %s (%s)\n%s", n.ID, n.Addr, n.logs.String())
	}
	return s
}

// WaitReady waits until every running node is unsealed and knows the
// active node, and the raft configuration lists every node as a voter.
func (c *Cluster) WaitReady(tb testing.TB) {
	tb.Helper()
	var why error
	deadline := time.Now().Add(90 * time.Second)
	for why = c.ready(); why != nil; why = c.ready() {
		if time.Now().After(deadline) {
			tb.Fatalf("vault cluster not ready after 90s: %v\n%s", why, c.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready says why the cluster is not ready, or nil.
func (c *Cluster) ready() error {
	active, err := c.active()
	if err != nil {
		return err
	}
	for i, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		h, err := c.health(i)
		if err != nil || h.Sealed {
			return fmt.Errorf("%s: sealed or not answering: %v", n.ID, err)
		}
		// A standby that does not know the active node yet answers 500
		// "active cluster node not found" instead of forwarding.
		l, err := c.client(i, "").Sys().Leader()
		if err != nil || l.LeaderAddress != c.Nodes[active].Addr {
			return fmt.Errorf("%s: does not know the active node %s yet: %v, %v", n.ID, c.Nodes[active].ID, l, err)
		}
	}
	s, err := c.Client(active).Logical().Read("sys/storage/raft/configuration")
	if err != nil || s == nil {
		return fmt.Errorf("raft configuration: %v", err)
	}
	cfg, _ := s.Data["config"].(map[string]any)
	servers, _ := cfg["servers"].([]any)
	voters := 0
	for _, srv := range servers {
		if m, _ := srv.(map[string]any); m["voter"] == true {
			voters++
		}
	}
	if voters != len(c.Nodes) {
		return fmt.Errorf("%d of %d nodes are raft voters: %v", voters, len(c.Nodes), servers)
	}
	return nil
}

func (c *Cluster) health(i int) (*api.HealthResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.client(i, "").Sys().HealthWithContext(ctx)
}

// active returns the running node that is active, or why there is none.
func (c *Cluster) active() (int, error) {
	for i, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		if h, err := c.health(i); err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return i, nil
		}
	}
	return -1, fmt.Errorf("no running node is active")
}

// Active waits until a running node is active and returns its index.
func (c *Cluster) Active(tb testing.TB) int {
	tb.Helper()
	var i int
	var err error
	testutil.Eventually(tb, "an active vault node", func() bool {
		i, err = c.active()
		return err == nil
	})
	return i
}

// Kill ends node i's process with SIGKILL, as a crash would, and waits for
// it. A node already down is left alone.
func (c *Cluster) Kill(i int) {
	n := c.Nodes[i]
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

// Restart starts node i again on its data directory, unseals it and waits
// until the cluster is ready.
func (c *Cluster) Restart(tb testing.TB, i int) {
	tb.Helper()
	c.Kill(i)
	c.start(tb, i)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.unseal(ctx, i); err != nil {
		tb.Fatalf("vault cluster: %v\n%s", err, c.Logs())
	}
	c.WaitReady(tb)
}
