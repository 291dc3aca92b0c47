package attest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// podContainer is what a process's cgroup says about its pod.
type podContainer struct {
	PodUID      string // with dashes, as in the API
	ContainerID string // 64 hex digits, without runtime prefix
	Conmon      bool   // CRI-O's container monitor, not the workload
}

// A pod's cgroup, in every layout the kubelet makes: cgroup v1 or v2, the
// cgroupfs driver ("pod<uid>", QoS class as a parent directory, none for
// Guaranteed) or the systemd driver ("kubepods-<qos>-pod<uid_with_underscores>.slice").
var podSegment = regexp.MustCompile(`^(?:kubepods-(?:besteffort-|burstable-)?)?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$`)

// A container's cgroup: containerd ("cri-containerd-<id>.scope"), CRI-O
// ("crio-<id>.scope", "crio-conmon-<id>.scope"), Docker ("docker-<id>.scope"),
// or a bare ID with the cgroupfs driver.
var containerSegment = regexp.MustCompile(`^(?:(cri-containerd|crio-conmon|crio|docker)-)?([0-9a-f]{64})(?:\.scope)?$`)

// parseCgroup finds the pod and container in the contents of
// /proc/<pid>/cgroup. Paths may be relative to the reader's cgroup
// namespace ("/../../kubepods.slice/…"), so segments are matched wherever
// they stand. ok is false for a process that is not in a pod container.
func parseCgroup(data []byte) (pc podContainer, ok bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controllers:path; the path may itself contain ':'.
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		found, hit := fromPath(parts[2])
		if !hit {
			continue
		}
		if ok && found != pc {
			return podContainer{}, false, fmt.Errorf("cgroup hierarchies disagree: %+v and %+v", pc, found)
		}
		pc, ok = found, true
	}
	return pc, ok, sc.Err()
}

func fromPath(path string) (podContainer, bool) {
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		m := podSegment.FindStringSubmatch(seg)
		if m == nil || i+1 >= len(segs) {
			continue
		}
		c := containerSegment.FindStringSubmatch(segs[len(segs)-1])
		if c == nil {
			// The pod's own cgroup (the pause sandbox on some runtimes) or
			// a process not in a container: nothing to attest.
			return podContainer{}, false
		}
		return podContainer{
			PodUID:      strings.ReplaceAll(m[1], "_", "-"),
			ContainerID: c[2],
			Conmon:      c[1] == "crio-conmon",
		}, true
	}
	return podContainer{}, false
}

// readCgroup reads and parses /proc/<pid>/cgroup.
func readCgroup(path string) (podContainer, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return podContainer{}, false, err
	}
	return parseCgroup(data)
}
