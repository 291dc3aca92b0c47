package attest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/agent/peer"
)

// PodSource finds pods running on this node.
type PodSource interface {
	// Pod returns the pod with the given UID if this node runs it.
	Pod(ctx context.Context, uid string) (*corev1.Pod, bool, error)
}

// ErrContainerNotListed means a process runs in a pod container the pod
// source does not list yet (it just started); the caller may retry.
var ErrContainerNotListed = errors.New("attest: k8s: container not listed in its pod's status yet")

// Kubernetes attests the pod and container of a process. Its selectors:
//
//	k8s:ns:<namespace>               k8s:sa:<service account>
//	k8s:pod-name:<name>              k8s:pod-uid:<uid>
//	k8s:pod-label:<key>:<value>      k8s:pod-owner:<Kind>:<name>
//	k8s:container-name:<name>        k8s:container-image:<image>
//	k8s:node-name:<node>
//
// A process whose cgroup names no pod, or a pod this node does not run,
// gets no k8s selectors (and no error): it may still match unix rules.
// CRI-O's conmon is a runtime helper, not the workload, and gets none
// either. Only pods on this node are ever attested.
type Kubernetes struct {
	Source   PodSource
	NodeName string
	// ProcRoot is where procfs is mounted; empty means /proc.
	ProcRoot string
	// Retries and RetryInterval bound the wait for a container that just
	// started and is not in its pod's status yet; 0 means 10 and 100ms.
	Retries       int
	RetryInterval time.Duration
	Clock         clock.Clock
}

// k8sMemo is what a connection's cgroup said: which pod and container
// the caller runs in. A process cannot leave its pod's cgroup without
// privileges over the node's cgroup tree, so it is read once per
// connection (the pod itself is looked up on every call: its labels may
// change).
type k8sMemo struct {
	pc podContainer
	ok bool
}

// cgroupOf reads the caller's cgroup, or takes what its connection's
// first call read.
func (k *Kubernetes) cgroupOf(root string, c peer.Caller) (podContainer, bool, error) {
	if v, ok := c.Memo.Load(k); ok {
		m := v.(k8sMemo)
		return m.pc, m.ok, nil
	}
	pc, ok, err := readCgroup(filepath.Join(root, strconv.Itoa(int(c.PID)), "cgroup"))
	if err == nil {
		c.Memo.Store(k, k8sMemo{pc: pc, ok: ok})
	}
	return pc, ok, err
}

// Attest implements Attestor.
func (k *Kubernetes) Attest(ctx context.Context, c peer.Caller) ([]Selector, error) {
	root := k.ProcRoot
	if root == "" {
		root = "/proc"
	}
	pc, ok, err := k.cgroupOf(root, c)
	if err != nil {
		return nil, fmt.Errorf("attest: k8s: cgroup of pid %d: %w", c.PID, err)
	}
	if !ok || pc.Conmon {
		return nil, nil
	}
	retries, interval := k.Retries, k.RetryInterval
	if retries <= 0 {
		retries = 10
	}
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	clk := k.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	for attempt := 0; ; attempt++ {
		pod, found, err := k.Source.Pod(ctx, pc.PodUID)
		if err != nil {
			return nil, fmt.Errorf("attest: k8s: %w", err)
		}
		if found && k.NodeName != "" && pod.Spec.NodeName != k.NodeName {
			found = false // only pods of this node are ever attested
		}
		if found {
			if sel, ok := k.selectors(pod, pc.ContainerID); ok {
				return sel, nil
			}
		}
		if attempt >= retries {
			if !found {
				// Not a pod of this node (or one deleted meanwhile).
				return nil, nil
			}
			return nil, fmt.Errorf("%w (pod %s/%s, container %.12s)", ErrContainerNotListed, pod.Namespace, pod.Name, pc.ContainerID)
		}
		if s, ok := k.Source.(interface{ MarkStale() }); ok {
			s.MarkStale() // a cached answer cannot show what just started
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-clk.After(interval):
		}
	}
}

// selectors returns the selectors for containerID in pod, if it is listed.
func (k *Kubernetes) selectors(pod *corev1.Pod, containerID string) ([]Selector, bool) {
	var status *corev1.ContainerStatus
	for _, list := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for i := range list {
			if _, id, _ := strings.Cut(list[i].ContainerID, "://"); id == containerID {
				status = &list[i]
			}
		}
	}
	if status == nil {
		return nil, false
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	sel := []Selector{
		{Type: "k8s", Value: "ns:" + pod.Namespace},
		{Type: "k8s", Value: "sa:" + sa},
		{Type: "k8s", Value: "pod-name:" + pod.Name},
		{Type: "k8s", Value: "pod-uid:" + string(pod.UID)},
		{Type: "k8s", Value: "node-name:" + pod.Spec.NodeName},
		{Type: "k8s", Value: "container-name:" + status.Name},
		{Type: "k8s", Value: "container-image:" + status.Image},
	}
	for key, value := range pod.Labels {
		sel = append(sel, Selector{Type: "k8s", Value: "pod-label:" + key + ":" + value})
	}
	for _, o := range pod.OwnerReferences {
		sel = append(sel, Selector{Type: "k8s", Value: "pod-owner:" + o.Kind + ":" + o.Name})
	}
	return sel, true
}

// Multi runs attestors in turn and joins their selectors; any error fails
// the attestation.
type Multi []Attestor

// Attest implements Attestor.
func (m Multi) Attest(ctx context.Context, c peer.Caller) ([]Selector, error) {
	var out []Selector
	for _, a := range m {
		sel, err := a.Attest(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, sel...)
	}
	return out, nil
}
