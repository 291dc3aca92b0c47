package peer_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// The test binary plays the processes of an attack when SWORN_TEST_ROLE is
// set. Copies of it (with different trailing bytes, hence other digests)
// stand for the attacker's binary and the binary a rule names.
//
//	attacker  connects to SWORN_TEST_SOCK, hands the connection to a helper
//	          (SWORN_TEST_HELPER=1) on its own stdin/stdout, keeps its own
//	          copy across exec if SWORN_TEST_KEEP=1, then execs
//	          SWORN_TEST_TARGET as "target", at once if SWORN_TEST_EXEC_NOW=1
//	          or when "exec" is read from fd 3
//	target    says "up" on fd 4; with SWORN_TEST_ADDR set it then fetches
//	          its own SVIDs on a new connection and reports them on fd 4;
//	          it lives until fd 3 reaches EOF
//	helper    fetches X.509-SVIDs over the inherited fd 3 with go-spiffe's
//	          client each time it reads "fetch", and prints what it got
//	nsmount   bind-mounts its own executable over SWORN_TEST_VICTIM (run it
//	          inside unshare -Urm) and execs that path as "fetch"
//	fetch     fetches its SVIDs from SWORN_TEST_ADDR and prints them
const roleEnv = "SWORN_TEST_ROLE"

func runRole(role string) {
	var err error
	switch role {
	case "attacker":
		err = attacker()
	case "target":
		err = target()
	case "helper":
		err = helper()
	case "nsmount":
		err = nsmount()
	case "streamer":
		err = streamer()
	case "reader":
		err = reader()
	case "fetch":
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		svids, ferr := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(os.Getenv("SWORN_TEST_ADDR")))
		fmt.Println(fetchResult(svids, ferr))
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		os.Exit(2)
	}
	os.Exit(0)
}

// fetchResult prints the SPIFFE IDs fetched, sorted, or the gRPC code of
// the failure.
func fetchResult(svids []*x509svid.SVID, err error) string {
	if err != nil {
		return "code: " + status.Code(err).String()
	}
	ids := make([]string, 0, len(svids))
	for _, s := range svids {
		ids = append(ids, s.ID.String())
	}
	slices.Sort(ids)
	return "ids: " + strings.Join(ids, ",")
}

// withRole returns this process's environment with the role replaced;
// syscall.Exec, unlike os/exec, keeps duplicate variables and getenv would
// see the first.
func withRole(role string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, roleEnv+"=") })
	return append(env, roleEnv+"="+role)
}

func attacker() error {
	// The control and status pipes (fds 3 and 4) are for the target only;
	// the helper must not hold them open.
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	c, err := net.Dial("unix", os.Getenv("SWORN_TEST_SOCK"))
	if err != nil {
		return err
	}
	f, err := c.(*net.UnixConn).File()
	if err != nil {
		return err
	}
	_ = c.Close()
	if os.Getenv("SWORN_TEST_HELPER") == "1" {
		h := exec.Command(os.Args[0], "-test.run=^$")
		h.Env = withRole("helper")
		h.ExtraFiles = []*os.File{f}
		h.Stdin, h.Stdout, h.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := h.Start(); err != nil {
			return err
		}
	}
	if os.Getenv("SWORN_TEST_KEEP") == "1" {
		// Keep the connection open across exec, as a C program that
		// forgot SOCK_CLOEXEC would (Go sets close-on-exec everywhere).
		if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
			return err
		}
	} else {
		_ = f.Close()
	}
	if os.Getenv("SWORN_TEST_EXEC_NOW") != "1" {
		line, err := bufio.NewReader(os.NewFile(3, "ctl")).ReadString('\n')
		if err != nil || line != "exec\n" {
			return fmt.Errorf("control: %q, %v", line, err)
		}
	}
	for _, fd := range []int{3, 4} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return err
		}
	}
	t := os.Getenv("SWORN_TEST_TARGET")
	return syscall.Exec(t, []string{t, "-test.run=^$"}, withRole("target"))
}

func target() error {
	status := os.NewFile(4, "status")
	if _, err := fmt.Fprintln(status, "up"); err != nil {
		return err
	}
	if addr := os.Getenv("SWORN_TEST_ADDR"); addr != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(addr))
		cancel()
		fmt.Fprintln(status, fetchResult(svids, err))
	}
	var b [1]byte
	for {
		if _, err := os.NewFile(3, "ctl").Read(b[:]); err != nil {
			return nil
		}
	}
}

func helper() error {
	conn, err := net.FileConn(os.NewFile(3, "inherited"))
	if err != nil {
		return err
	}
	var used atomic.Bool
	dial := func(context.Context, string) (net.Conn, error) {
		if used.Swap(true) {
			return nil, errors.New("the inherited connection was already used")
		}
		return conn, nil
	}
	client, err := workloadapi.New(context.Background(),
		workloadapi.WithAddr("unix:///inherited"),
		workloadapi.WithDialOptions(grpc.WithContextDialer(dial)))
	if err != nil {
		return err
	}
	defer client.Close()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "fetch" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		svids, err := client.FetchX509SVIDs(ctx)
		cancel()
		fmt.Println(fetchResult(svids, err))
	}
	return nil
}

func nsmount() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	victim := os.Getenv("SWORN_TEST_VICTIM")
	if err := syscall.Mount(self, victim, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mount %s over %s: %w", self, victim, err)
	}
	return syscall.Exec(victim, []string{victim, "-test.run=^$"}, withRole("fetch"))
}
