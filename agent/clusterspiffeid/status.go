package clusterspiffeid

import (
	"context"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// statusWriter writes the Accepted condition. Every agent reaches the same
// verdict on an object (it depends on the object and the agents' shared
// settings only), so each waits a random part of StatusDelay, looks again
// and writes only if no other agent has: one write per change, not one
// per node. It never writes the same verdict twice for one generation,
// even when the write does not stick (under SPIRE's CRD the API server
// prunes conditions), so it cannot loop.
type statusWriter struct {
	cfg  Config
	objs cache.SharedIndexInformer

	mu      sync.Mutex
	tried   map[types.UID]metav1.Condition // last verdict written or being written
	off     string                         // why writing stopped for good, if it did
	running sync.WaitGroup
}

// forget drops what it tried for objects that are gone.
func (w *statusWriter) forget(seen map[types.UID]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for uid := range w.tried {
		if !seen[uid] {
			delete(w.tried, uid)
		}
	}
}

func newStatusWriter(cfg Config, objs cache.SharedIndexInformer) *statusWriter {
	return &statusWriter{cfg: cfg, objs: objs, tried: map[types.UID]metav1.Condition{}}
}

func (w *statusWriter) wait() { w.running.Wait() }

// verdict is the Accepted condition for a parse result.
func verdict(gen int64, p *Parsed, err error) metav1.Condition {
	c := metav1.Condition{Type: ConditionAccepted, Status: metav1.ConditionTrue, Reason: ReasonValid, ObservedGeneration: gen,
		Message: "in force: sworn agents give the selected pods this identity"}
	switch {
	case err != nil:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonInvalid
		c.Message = "refused, no pod gets an identity from this object: " + err.Error()
	case len(p.Unsupported) > 0:
		c.Reason = ReasonUnsupported
		c.Message = "in force without " + strings.Join(p.Unsupported, ", ") + ", which sworn does not honour"
	}
	if err == nil && len(p.Notes) > 0 {
		c.Message += "; " + strings.Join(p.Notes, "; ")
	}
	return c
}

func sameVerdict(a, b metav1.Condition) bool {
	return a.Status == b.Status && a.Reason == b.Reason && a.Message == b.Message && a.ObservedGeneration == b.ObservedGeneration
}

// current is the object's Accepted condition as stored.
func current(u *unstructured.Unstructured) (metav1.Condition, bool) {
	c := meta.FindStatusCondition(conditions(u), ConditionAccepted)
	if c == nil {
		return metav1.Condition{}, false
	}
	return *c, true
}

// conditions are the object's stored conditions; any that do not decode
// are dropped.
func conditions(u *unstructured.Unstructured) []metav1.Condition {
	raw, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	conds := []metav1.Condition{}
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		var c metav1.Condition
		if runtime.DefaultUnstructuredConverter.FromUnstructured(m, &c) == nil {
			conds = append(conds, c)
		}
	}
	return conds
}

// report schedules a status write for u if its stored condition is not
// the verdict and this agent has not tried to write it.
func (w *statusWriter) report(ctx context.Context, u *unstructured.Unstructured, p *Parsed, err error) {
	want := verdict(u.GetGeneration(), p, err)
	if have, ok := current(u); ok && sameVerdict(have, want) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.tried[u.GetUID()]; w.off != "" || ok && sameVerdict(t, want) {
		return
	}
	w.tried[u.GetUID()] = want
	w.running.Add(1)
	go func() {
		defer w.running.Done()
		result := w.write(ctx, u.GetName(), u.GetUID(), want)
		if w.cfg.OnStatus != nil {
			w.cfg.OnStatus(result)
		}
	}()
}

func (w *statusWriter) write(ctx context.Context, name string, uid types.UID, want metav1.Condition) string {
	if d := w.cfg.StatusDelay; d > 0 && w.cfg.Rand != nil {
		select {
		case <-ctx.Done():
			return "skipped"
		case <-w.cfg.Clock.After(time.Duration(w.cfg.Rand() * float64(d))):
		}
	}
	o, ok, err := w.objs.GetStore().GetByKey(name)
	if err != nil || !ok {
		return "skipped"
	}
	u, ok := o.(*unstructured.Unstructured)
	if !ok || u.GetUID() != uid || u.GetGeneration() != want.ObservedGeneration {
		return "skipped" // gone or changed: the next reconcile has its own verdict
	}
	if have, ok := current(u); ok && sameVerdict(have, want) {
		return "skipped" // another agent wrote it
	}
	u = u.DeepCopy()
	conds := conditions(u)
	want.LastTransitionTime = metav1.NewTime(w.cfg.Clock.Now())
	meta.SetStatusCondition(&conds, want)
	raw := make([]any, 0, len(conds))
	for _, c := range conds {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&c)
		if err != nil {
			return "error"
		}
		raw = append(raw, m)
	}
	if err := unstructured.SetNestedSlice(u.Object, raw, "status", "conditions"); err != nil {
		return "error"
	}
	got, err := w.cfg.Dynamic.Resource(Resource).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	switch {
	case err == nil:
		if _, ok := current(got); !ok {
			// The API server dropped the conditions: SPIRE's own CRD,
			// whose status has no conditions. Writing again would only
			// repeat that, on every agent.
			w.stop("the installed ClusterSPIFFEID CRD has no status.conditions (SPIRE's own); apply sworn's (deploy/kubernetes/base/crd-clusterspiffeid.yaml) to see verdicts in the status")
		}
		return "written"
	case apierrors.IsConflict(err):
		// Another agent wrote first; the watch brings what it wrote.
		return "conflict"
	case apierrors.IsForbidden(err):
		w.stop("the agent may not update clusterspiffeids/status (RBAC): " + err.Error())
	case ctx.Err() == nil:
		// Not tried again for this verdict: a retry on every event would
		// be a loop on a broken API server.
		w.cfg.Logger.Warn("cannot write a ClusterSPIFFEID's status", "name", name, "err", err)
	}
	return "error"
}

// stop ends status writing until the agent restarts, saying why once.
func (w *statusWriter) stop(why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.off == "" {
		w.off = why
		w.cfg.Logger.Warn("not writing ClusterSPIFFEID status any more: " + why + "; verdicts are still in this log and the sworn_cluster_spiffeids metric")
	}
}
