package agent_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/k8stest"
	"github.com/sworn-id/sworn/agent/peer"
)

func percentiles(b *testing.B, d []time.Duration, unit string) {
	b.Helper()
	slices.Sort(d)
	at := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-"+unit)
	b.ReportMetric(at(0.99), "p99-"+unit)
}

// BenchmarkKubernetesAttestation measures, against a real kube-apiserver
// with the pod source the agent uses by default (a watch on this node's
// pods): the latency of attesting a pid of a known pod (unix and k8s
// attestors together), and the time from creating a pod (and setting its
// container status) to the agent being able to attest it.
//
// Like the agent, it keeps one unix attestor (and so one digest cache of
// executables) for every call: the 50 MB test binary is hashed once, before
// timing starts, not per pod. Only the Kubernetes attestor's ProcRoot, a
// stand-in procfs giving this process the new pod's cgroup, is per pod.
func BenchmarkKubernetesAttestation(b *testing.B) {
	c := k8stest.Start(b)
	src, err := attest.NewInformerSource(c.Admin, "node-a")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go src.Run(ctx)
	if !src.WaitForSync(ctx) {
		b.Fatal("informer did not sync")
	}
	caller := peer.Caller{PID: int32(os.Getpid()), UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	unix := &attest.Unix{}
	if _, err := unix.Attest(ctx, caller); err != nil { // hashes the executable
		b.Fatal(err)
	}
	newAttestor := func(uid string) attest.Multi {
		return attest.Multi{unix, &attest.Kubernetes{Source: src, NodeName: "node-a", ProcRoot: podProcRoot(b, uid), Retries: 1000, RetryInterval: time.Millisecond}}
	}

	// -count repeats each sub-benchmark against this one cluster, so the
	// known pod is made once and new pods' names never repeat.
	known := newAttestor(string(runPod(b, c, "bench", "known", "api", nil).UID))
	created := 0

	b.Run("known-pod", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			sel, err := known.Attest(ctx, caller)
			if err != nil || len(sel) < 10 {
				b.Fatalf("attest: %v (%d selectors)", err, len(sel))
			}
			lat = append(lat, time.Since(start))
		}
		percentiles(b, lat, "ms")
	})

	b.Run("pod-creation-to-attestable", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			created++
			name := fmt.Sprintf("new-%d", created)
			start := time.Now()
			pod := runPod(b, c, "bench", name, "api", nil)
			a := newAttestor(string(pod.UID))
			for {
				sel, err := a.Attest(ctx, caller)
				if err == nil && len(sel) >= 10 {
					break
				}
			}
			lat = append(lat, time.Since(start))
			_ = c.Admin.CoreV1().Pods("bench").Delete(ctx, name, *metav1.NewDeleteOptions(0))
		}
		percentiles(b, lat, "ms")
	})
}
