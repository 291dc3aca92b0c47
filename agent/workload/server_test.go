//go:build linux

package workload_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/peer"
	"github.com/sworn-id/sworn/agent/registry"
	wl "github.com/sworn-id/sworn/agent/workload"
	"github.com/sworn-id/sworn/internal/testutil"
)

// connectEnv makes the test binary a caller that connects to the socket it
// names, hands the connection to its parent over fd 3 and then waits, alive,
// until its stdin closes or it is killed.
const connectEnv = "SWORN_WORKLOAD_TEST_CONNECT"

func TestMain(m *testing.M) {
	if path := os.Getenv(connectEnv); path != "" {
		os.Exit(connectAndHandOver(path))
	}
	os.Exit(m.Run())
}

func connectAndHandOver(path string) int {
	c, err := net.Dial("unix", path)
	if err != nil {
		return 2
	}
	f, err := c.(*net.UnixConn).File()
	if err != nil {
		return 3
	}
	if err := unix.Sendmsg(3, []byte{1}, unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
		return 4
	}
	_, _ = os.Stdin.Read(make([]byte, 1))
	return 0
}

// fakeAttestor records whom it attested and runs hook during attestation.
type fakeAttestor struct {
	mu      sync.Mutex
	callers []peer.Caller
	hook    func()
}

func (a *fakeAttestor) Attest(_ context.Context, c peer.Caller) ([]attest.Selector, error) {
	a.mu.Lock()
	a.callers = append(a.callers, c)
	a.mu.Unlock()
	if a.hook != nil {
		a.hook()
	}
	return []attest.Selector{{Type: "unix", Value: "uid:1000"}}, nil
}

func (a *fakeAttestor) attested() []peer.Caller {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]peer.Caller(nil), a.callers...)
}

type fakeRegistry struct{ entries []registry.Entry }

func (r fakeRegistry) Match(attest.Set) ([]registry.Entry, []error) { return r.entries, nil }
func (fakeRegistry) Changed() <-chan struct{}                       { return nil }

type fakeBundles struct{}

func (fakeBundles) Snapshot() bundle.Snapshot { return bundle.Snapshot{} }
func (fakeBundles) Changed() <-chan struct{}  { return nil }

// fakeCache hands out subscriptions that hold no SVID.
type fakeCache struct{}

func (fakeCache) Subscribe(context.Context, []registry.Entry, cache.Requester) (wl.Subscription, error) {
	return fakeSub{}, nil
}

type fakeSub struct{}

func (fakeSub) SVIDs() []*cache.SVID                                            { return nil }
func (fakeSub) Updates() <-chan struct{}                                        { return nil }
func (fakeSub) Update(context.Context, []registry.Entry, cache.Requester) error { return nil }
func (fakeSub) Close()                                                          {}

var entry = registry.Entry{ID: spiffeid.RequireFromString("spiffe://example.org/app")}

// serve runs a Workload API server with fakes behind it on a real Unix
// socket whose connections know their caller, and returns the socket path.
func serve(t *testing.T, a *fakeAttestor, reg fakeRegistry) string {
	t.Helper()
	dir := testutil.ShortTempDir(t, "wl")
	path := filepath.Join(dir, "w.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	s := wl.New(wl.Config{
		TrustDomain: spiffeid.RequireTrustDomainFromString("example.org"),
		Attestor:    a, Registry: reg, Cache: fakeCache{}, Bundles: fakeBundles{},
	}, done)
	g := grpc.NewServer(grpc.Creds(peer.Credentials()))
	s.Register(g)
	go func() { _ = g.Serve(peer.Listen(ul)) }()
	t.Cleanup(func() { close(done); g.Stop() })
	return path
}

func client(t *testing.T, path string, dial func(context.Context, string) (net.Conn, error)) *workloadapi.Client {
	t.Helper()
	opts := []workloadapi.ClientOption{workloadapi.WithAddr("unix://" + path)}
	if dial != nil {
		opts = append(opts, workloadapi.WithDialOptions(grpc.WithContextDialer(dial)))
	}
	c, err := workloadapi.New(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func requireStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	if s, _ := status.FromError(err); s.Code() != code || !strings.Contains(s.Message(), msg) {
		t.Fatalf("got %v, want %s containing %q", err, code, msg)
	}
}

// A caller no rule names gets PermissionDenied. Runs as any user: the
// caller is this process, attested from its own connection.
func TestCallerWithNoIdentityIsPermissionDenied(t *testing.T) {
	a := &fakeAttestor{}
	path := serve(t, a, fakeRegistry{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client(t, path, nil).FetchX509SVID(ctx)
	requireStatus(t, err, codes.PermissionDenied, "no identity issued")
	got := a.attested()
	if len(got) != 1 || int(got[0].PID) != os.Getpid() || int(got[0].UID) != os.Geteuid() {
		t.Fatalf("attested %+v, want this process (pid %d, uid %d) once", got, os.Getpid(), os.Geteuid())
	}
}

// A call without the security header is refused before anything is
// attested.
func TestMissingSecurityHeaderIsInvalidArgument(t *testing.T) {
	a := &fakeAttestor{}
	path := serve(t, a, fakeRegistry{entries: []registry.Entry{entry}})
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = workload.NewSpiffeWorkloadAPIClient(conn).FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"a"}})
	requireStatus(t, err, codes.InvalidArgument, "security header missing from request")
	if got := a.attested(); len(got) != 0 {
		t.Fatalf("a call without the header was attested: %+v", got)
	}
}

// A caller that exits while it is attested may have had its PID reused by
// the time /proc was read, so it gets Unavailable, not the identity a rule
// gives what was read. The caller is a child process that connects and
// hands its connection to this test; the attestor kills and reaps it.
func TestCallerExitedDuringAttestationIsUnavailable(t *testing.T) {
	a := &fakeAttestor{}
	path := serve(t, a, fakeRegistry{entries: []registry.Entry{entry}})
	conn, child := connectFromChild(t, path)
	a.hook = func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	}
	var once sync.Once
	dial := func(context.Context, string) (net.Conn, error) {
		c := net.Conn(nil)
		once.Do(func() { c = conn })
		if c == nil {
			return nil, errors.New("the child's connection was used already")
		}
		return c, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client(t, path, dial).FetchX509SVID(ctx)
	requireStatus(t, err, codes.Unavailable, "exited during attestation")
	if got := a.attested(); len(got) != 1 || int(got[0].PID) != child.Process.Pid {
		t.Fatalf("attested %+v, want the child (pid %d) once", got, child.Process.Pid)
	}
}

// connectFromChild starts a child that connects to path and returns the
// connection it hands over, whose kernel-recorded caller is the child.
func connectFromChild(t *testing.T, path string) (net.Conn, *exec.Cmd) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "parent"), os.NewFile(uintptr(fds[1]), "child")
	defer mine.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), connectEnv+"="+path)
	cmd.ExtraFiles = []*os.File{theirs}
	if _, err := cmd.StdinPipe(); err != nil { // held open: the child waits on it
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(mine.Fd()), make([]byte, 1), oob, 0)
	if err != nil || oobn == 0 {
		t.Fatalf("the child handed over no connection: %v", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control message: %v", err)
	}
	rights, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(rights) != 1 {
		t.Fatalf("rights: %v", err)
	}
	f := os.NewFile(uintptr(rights[0]), "conn")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return c, cmd
}

// A caller whose every SVID has expired unrenewed (the CA has been down
// longer than their life) gets Unavailable, to retry, and never an expired
// SVID: the cache leaves expired ones out, and an empty answer is refused.
func TestCallerWhoseSVIDsAllExpiredIsUnavailable(t *testing.T) {
	path := serve(t, &fakeAttestor{}, fakeRegistry{entries: []registry.Entry{entry}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client(t, path, nil).FetchX509Context(ctx)
	requireStatus(t, err, codes.Unavailable, "has expired and the CA has not renewed it yet")
}
