//go:build linux

package admin_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sworn-id/sworn/agent/admin"
	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/peer"
	"github.com/sworn-id/sworn/internal/testutil"
)

// fakeCache rotates the SVIDs it is told it holds.
type fakeCache struct {
	held    map[spiffeid.ID]bool
	rotated chan []spiffeid.ID
}

func (fakeCache) Identities() []cache.Identity { return nil }

func (c fakeCache) Rotate(ids ...spiffeid.ID) int {
	c.rotated <- ids
	n := 0
	for _, id := range ids {
		if c.held[id] {
			n++
		}
	}
	return n
}

var app = spiffeid.RequireFromString("spiffe://example.org/app")

// serve runs the admin API, behind its caller check, on a real Unix socket
// that any uid may connect to (the check under test is the server's).
func serve(t *testing.T, allowed []uint32, c fakeCache) string {
	t.Helper()
	dir := testutil.ShortTempDir(t, "adm")
	path := filepath.Join(dir, "a.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{dir: 0o755, path: 0o777} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	s := admin.New(admin.Config{Cache: c, AllowedUIDs: allowed})
	g := grpc.NewServer(grpc.Creds(peer.Credentials()), grpc.UnaryInterceptor(s.UnaryInterceptor))
	s.Register(g)
	go func() { _ = g.Serve(peer.Listen(ul)) }()
	t.Cleanup(g.Stop)
	return path
}

// otherUID is a uid root does not hold: as root the test connects as
// 65534; as anyone else, its own uid is already not root.
func otherUID() uint32 {
	if os.Geteuid() == 0 {
		return 65534
	}
	return uint32(os.Geteuid())
}

// dialAs connects to path with uid as the effective uid of the connecting
// thread, so SO_PEERCRED reads uid. Only root can take another uid; a raw
// setresuid changes the calling thread alone, which stays locked (and is
// discarded with its goroutine) unless it is back to root.
func dialAs(t *testing.T, path string, uid uint32) net.Conn {
	t.Helper()
	if uid == uint32(os.Geteuid()) {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		keep := ^uintptr(0)
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, keep, uintptr(uid), keep); e != 0 {
			done <- result{err: fmt.Errorf("setresuid(-1, %d, -1): %w", uid, e)}
			return
		}
		c, err := net.Dial("unix", path)
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, keep, 0, keep); e != 0 {
			done <- result{err: fmt.Errorf("setresuid back to root: %w", e)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{c, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.c
}

// rotateAs asks, over a connection of uid, to rotate ids.
func rotateAs(t *testing.T, path string, uid uint32, ids ...string) (*adminpb.RotateSVIDsResponse, error) {
	t.Helper()
	c := dialAs(t, path, uid)
	conn, err := grpc.NewClient("passthrough:///admin", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return c, nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return adminpb.NewAdminClient(conn).RotateSVIDs(ctx, &adminpb.RotateSVIDsRequest{SpiffeIds: ids})
}

var adminCases = []struct {
	name     string
	allowed  func(uid uint32) []uint32
	id       string
	wantCode codes.Code
	wantMsg  string
	rotated  bool // whether the request reached the cache
}{
	{name: "a uid not allowed is refused", allowed: func(uint32) []uint32 { return nil },
		id: app.String(), wantCode: codes.PermissionDenied, wantMsg: "may not use the admin API"},
	{name: "admin_uid admits that uid", allowed: func(uid uint32) []uint32 { return []uint32{uid} },
		id: app.String(), wantCode: codes.OK, rotated: true},
	{name: "rotating an SVID no one holds is NotFound", allowed: func(uid uint32) []uint32 { return []uint32{uid} },
		id: "spiffe://example.org/unknown", wantCode: codes.NotFound, wantMsg: "no cached SVID", rotated: true},
}

func TestCallerCheckAndRotate(t *testing.T) {
	uid := otherUID()
	t.Logf("calling as uid %d", uid)
	for _, tc := range adminCases {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeCache{held: map[spiffeid.ID]bool{app: true}, rotated: make(chan []spiffeid.ID, 1)}
			path := serve(t, tc.allowed(uid), c)
			resp, err := rotateAs(t, path, uid, tc.id)
			if s, _ := status.FromError(err); s.Code() != tc.wantCode || !strings.Contains(s.Message(), tc.wantMsg) {
				t.Fatalf("RotateSVIDs as uid %d: %v, want %s %q", uid, err, tc.wantCode, tc.wantMsg)
			}
			if tc.wantCode == codes.OK && resp.GetScheduled() != 1 {
				t.Fatalf("scheduled %d rotations, want 1", resp.GetScheduled())
			}
			select {
			case ids := <-c.rotated:
				if !tc.rotated || len(ids) != 1 || ids[0].String() != tc.id {
					t.Fatalf("the cache was asked to rotate %v (want rotated=%v, %s)", ids, tc.rotated, tc.id)
				}
			default:
				if tc.rotated {
					t.Fatal("the request never reached the cache")
				}
			}
		})
	}
}
