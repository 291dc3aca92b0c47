package agent_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/clusterspiffeid"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/k8stest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// idWatcher holds a Workload API stream open and keeps every update, as
// the workload's SPIFFE IDs (with DNS names) and when they arrived.
type idWatcher struct {
	mu      sync.Mutex
	updates []idUpdate
	changed chan struct{}
}

type idUpdate struct {
	at  time.Time
	ids string // sorted "path[dns,dns]" of every SVID, space-separated
}

func (w *idWatcher) OnX509ContextUpdate(x *workloadapi.X509Context) {
	var ids []string
	for _, s := range x.SVIDs {
		ids = append(ids, s.ID.Path()+"["+strings.Join(s.Certificates[0].DNSNames, ",")+"]")
	}
	sort.Strings(ids)
	w.mu.Lock()
	w.updates = append(w.updates, idUpdate{at: time.Now(), ids: strings.Join(ids, " ")})
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *idWatcher) OnX509ContextWatchError(error) {}

// waitFor returns the first update since index from whose IDs are want,
// and the index after it.
func (w *idWatcher) waitFor(t *testing.T, from int, want string) (idUpdate, int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		for i := from; i < len(w.updates); i++ {
			if w.updates[i].ids == want {
				u := w.updates[i]
				w.mu.Unlock()
				return u, i + 1
			}
		}
		last := "(none)"
		if n := len(w.updates); n > 0 {
			last = w.updates[n-1].ids
		}
		w.mu.Unlock()
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatalf("the pod's stream never held %q; last: %q", want, last)
		}
	}
}

func watchIDs(t *testing.T, ta *testAgent) *idWatcher {
	t.Helper()
	w := &idWatcher{changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr(ta.Addr()))
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// clusterSPIFFEIDCluster runs a control plane with the base's CRD and RBAC
// applied, node-a and namespaces prod (env=prod) and dev (env=dev), and
// a pod prod/api-0 (app=orders) that this test process is, to an agent
// reading ClusterSPIFFEID objects.
func clusterSPIFFEIDCluster(t *testing.T) (*k8stest.Cluster, *testAgent, *testutil.Buffer) {
	t.Helper()
	c := k8stest.Start(t)
	_, kubeconfig := agentClient(t, c)
	kubectl(t, c, "", "wait", "--for=condition=Established", "crd/clusterspiffeids.spire.spiffe.io", "--timeout=60s")
	ctx := context.Background()
	if _, err := c.Admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{"zone": "z1"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for ns, env := range map[string]string{"prod": "prod", "dev": "dev"} {
		if _, err := c.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"env": env}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod := runPod(t, c, "prod", "api-0", "api", map[string]string{"app": "orders", "td": "evil.org"})
	cfg := k8sAgentConfig(t, kubeconfig, podProcRoot(t, string(pod.UID)))
	off, noDelay := false, time.Duration(0)
	cfg.Kubernetes.DefaultIdentity = &off
	cfg.Kubernetes.ClusterSPIFFEIDs = config.ClusterSPIFFEIDs{Enabled: true, ClassName: "sworn", WatchClassless: true, StatusDelay: &noDelay}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs testutil.Buffer
	return c, agenttest.StartLogging(t, cfg, &logs), &logs
}

// updateTemplate appends path to an object's spiffeIDTemplate through the
// API (not kubectl, whose start-up would be most of what is measured) and
// returns when the API server took the update.
func updateTemplate(t *testing.T, c *k8stest.Cluster, name, path string) time.Time {
	t.Helper()
	dyn, err := dynamic.NewForConfig(c.AdminConfig)
	if err != nil {
		t.Fatal(err)
	}
	r := dyn.Resource(clusterspiffeid.Resource)
	ctx := context.Background()
	var start time.Time
	// The agent writes the object's status too, so an update may conflict.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := r.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		tmpl, _, _ := unstructured.NestedString(u.Object, "spec", "spiffeIDTemplate")
		tmpl = tmpl[:strings.LastIndex(tmpl, "}}")+2] + path
		if err := unstructured.SetNestedField(u.Object, tmpl, "spec", "spiffeIDTemplate"); err != nil {
			return err
		}
		start = time.Now()
		_, err = r.Update(ctx, u, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return start
}

// csid is a ClusterSPIFFEID document (after a ---) with the given spec
// lines.
func csid(name string, spec ...string) string {
	return "---\napiVersion: spire.spiffe.io/v1alpha1\nkind: ClusterSPIFFEID\nmetadata: {name: " + name + "}\nspec:\n  " + strings.Join(spec, "\n  ") + "\n"
}

// accepted is an object's Accepted condition as "status reason: message".
func accepted(t *testing.T, c *k8stest.Cluster, name string) string {
	t.Helper()
	return kubectl(t, c, "", "get", "clusterspiffeid", name, "-o",
		`jsonpath={.status.conditions[?(@.type=="Accepted")].status} {.status.conditions[?(@.type=="Accepted")].reason}: {.status.conditions[?(@.type=="Accepted")].message}`)
}

func waitAccepted(t *testing.T, c *k8stest.Cluster, name, prefix string) string {
	t.Helper()
	var got string
	testutil.Eventually(t, fmt.Sprintf("%s's status to start %q", name, prefix), func() bool {
		got = accepted(t, c, name)
		return strings.HasPrefix(got, prefix)
	})
	return got
}

const orders = `apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterSPIFFEID
metadata:
  name: orders
spec:
  spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}%s"
  namespaceSelector:
    matchLabels: {env: prod}
  podSelector:
    matchExpressions: [{key: app, operator: In, values: [orders, billing]}]
  dnsNameTemplates: ["{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}.svc", "{{ index .NodeMeta.Labels \"zone\" }}.example.org"]
  ttl: 30m
`

// TestClusterSPIFFEIDObjectsGivePodsTheirIdentities drives the agent with
// SPIRE-style objects on a real API server: selection by namespace and pod
// labels, templates over pod and node, class, fallback, updates and
// deletes reaching the open stream, and refusals with their reasons.
func TestClusterSPIFFEIDObjectsGivePodsTheirIdentities(t *testing.T) {
	c, ta, logs := clusterSPIFFEIDCluster(t)
	w := watchIDs(t, ta)
	apply := func(y string) { t.Helper(); kubectl(t, c, y, "apply", "-f", "-") }

	apply(fmt.Sprintf(orders, "") +
		csid("dev-only", `spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/dev"`, `namespaceSelector: {matchLabels: {env: dev}}`) +
		csid("other-class", `spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/other-class"`, `className: someone-else`) +
		csid("catch-all", `spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/fallback"`, `fallback: true`))
	_, next := w.waitFor(t, 0, "/ns/prod/sa/api[api-0.prod.svc,z1.example.org]")
	if got := waitAccepted(t, c, "orders", "True Valid"); !strings.Contains(got, "in force") {
		t.Errorf("orders' status = %q", got)
	}
	// The reconcile that counted other-class as another class's is the one
	// that would have written its status.
	testutil.Eventually(t, "other-class counted as another class's", func() bool {
		var m dto.Metric
		if err := ta.Agent.Metrics().ClusterSPIFFEIDs.WithLabelValues("other_class").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue() == 1
	})
	if got := accepted(t, c, "other-class"); got != " : " {
		t.Errorf("an object of another class got a status from this agent: %q", got)
	}

	// An update reaches the open stream; deleting the object leaves the
	// pod the fallback.
	for i := range 3 {
		path := fmt.Sprintf("/v%d", i+2)
		start := updateTemplate(t, c, "orders", path)
		var u idUpdate
		u, next = w.waitFor(t, next, "/ns/prod/sa/api"+path+"[api-0.prod.svc,z1.example.org]")
		t.Logf("object update to the open stream holding the new SVID: %v", u.at.Sub(start))
	}
	kubectl(t, c, "", "delete", "clusterspiffeid", "orders")
	w.waitFor(t, next, "/fallback[]")

	if strings.Contains(logs.String(), "panic") {
		t.Fatalf("log: %s", logs)
	}
}

// TestClusterSPIFFEIDRefusals: an object whose template names another
// trust domain, one whose pod data renders one, a malformed one and one
// with fields sworn does not honour are each refused or reported with the
// reason, and the good object beside them keeps working.
func TestClusterSPIFFEIDRefusals(t *testing.T) {
	c, ta, logs := clusterSPIFFEIDCluster(t)
	w := watchIDs(t, ta)
	kubectl(t, c, fmt.Sprintf(orders, "")+
		csid("other-td", `spiffeIDTemplate: "spiffe://evil.org/ns/{{ .PodMeta.Namespace }}"`)+
		csid("td-from-label", `spiffeIDTemplate: "spiffe://{{ index .PodMeta.Labels \"td\" }}/x"`)+
		csid("bad-ttl", `spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/bad"`, `ttl: 10s`)+
		csid("bad-template", `spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/{{ .PodMeta.Name"`)+
		csid("admin", `spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/admin/{{ .PodMeta.Name }}"`, `podSelector: {matchLabels: {app: orders}}`,
			`admin: true`, `autoPopulateDNSNames: true`),
		"apply", "-f", "-")
	w.waitFor(t, 0, "/admin/api-0[] /ns/prod/sa/api[api-0.prod.svc,z1.example.org]")
	for name, want := range map[string]string{
		"other-td":      `False InvalidSpec: refused, no pod gets an identity from this object: spec.spiffeIDTemplate: renders IDs in trust domain "evil.org"`,
		"bad-ttl":       "False InvalidSpec: refused, no pod gets an identity from this object: spec.ttl: 10s is shorter than sworn's shortest SVID lifetime",
		"bad-template":  "False InvalidSpec: refused, no pod gets an identity from this object: spec.spiffeIDTemplate:",
		"admin":         "True UnsupportedFields: in force without spec.admin, spec.autoPopulateDNSNames, which sworn does not honour",
		"td-from-label": "True Valid",
	} {
		waitAccepted(t, c, name, want)
	}
	waitLog(t, logs, `msg="ClusterSPIFFEID gives this pod no identity" component=clusterspiffeid name=td-from-label pod=prod/api-0 err="spec.spiffeIDTemplate: rendered spiffe://evil.org/x, outside this agent's trust domain \"example.org\""`)
}

// waitLog waits for want in the agent's log and fails with the log if it
// never comes.
func waitLog(t *testing.T, logs *testutil.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(testutil.WaitTimeout)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %s; it said:\n%s", want, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
