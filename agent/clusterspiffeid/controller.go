package clusterspiffeid

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/agent/registry"
)

// Pods is this node's pods, as the kubernetes attestor watches them.
type Pods interface {
	Pods() []*corev1.Pod
	OnChange(func()) error
	HasSynced() bool
}

// Sink takes the rules the objects make.
type Sink interface{ SetCluster([]registry.Compiled) }

// Stats is what one reconcile found, for metrics.
type Stats struct {
	Accepted, Refused, Rules, RenderFailures int
	// OtherClass counts objects skipped for their className; Masked the
	// rules dropped because an older object gave the pod the same ID.
	OtherClass, Masked int
}

// Config configures a Controller.
type Config struct {
	Options
	Dynamic  dynamic.Interface
	Kube     kubernetes.Interface
	NodeName string
	Pods     Pods
	Sink     Sink
	// DefaultTTL is the agent's SVID lifetime, for objects without ttl.
	DefaultTTL time.Duration
	// ClassName and WatchClassless choose the objects read: those whose
	// className is ClassName, and those with none when ClassName is empty
	// or WatchClassless is set.
	ClassName      string
	WatchClassless bool
	// IgnoreNamespaces are matched against the whole namespace name.
	IgnoreNamespaces []*regexp.Regexp
	// StatusDelay bounds a random wait before an agent writes an object's
	// status, so that of many agents seeing the same change one writes
	// and the others find it written. 0 writes at once.
	StatusDelay time.Duration
	Rand        func() float64
	Clock       clock.Clock
	Logger      *slog.Logger
	Observe     func(Stats)
	// OnStatus, if set, is told how each status write this agent
	// considered ended: written, skipped (found written or the object
	// changed), conflict (another agent wrote first) or error.
	OnStatus func(result string)
}

// Controller keeps the Sink's cluster rules in step with the objects.
type Controller struct {
	cfg     Config
	dyn     dynamicinformer.DynamicSharedInformerFactory
	kube    informers.SharedInformerFactory
	node    informers.SharedInformerFactory
	objs    cache.SharedIndexInformer
	nss     cache.SharedIndexInformer
	nodes   cache.SharedIndexInformer
	poke    chan struct{}
	parsed  map[types.UID]parsedAt
	failing map[string]string // object/pod → render error last logged
	noNode  bool              // the node was missing at the last reconcile (logged)
	classes int               // objects of other classes at the last reconcile (logged)
	status  *statusWriter
}

// parsedAt is an object parsed at one generation: a status write changes
// its resourceVersion but not its spec, so it is not parsed (and logged)
// again for that.
type parsedAt struct {
	generation int64
	p          *Parsed
	err        error
}

// New builds a controller; Run starts it.
func New(cfg Config) (*Controller, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	c := &Controller{cfg: cfg, poke: make(chan struct{}, 1), parsed: map[types.UID]parsedAt{}, failing: map[string]string{}}
	c.dyn = dynamicinformer.NewDynamicSharedInformerFactory(cfg.Dynamic, 0)
	c.kube = informers.NewSharedInformerFactory(cfg.Kube, 0)
	c.node = informers.NewSharedInformerFactoryWithOptions(cfg.Kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", cfg.NodeName).String()
	}))
	c.objs = c.dyn.ForResource(Resource).Informer()
	c.nss = c.kube.Core().V1().Namespaces().Informer()
	c.nodes = c.node.Core().V1().Nodes().Informer()
	if err := c.objs.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		cfg.Logger.Error("cannot watch ClusterSPIFFEID objects; is the CRD installed (deploy/kubernetes/base/crd-clusterspiffeid.yaml) and may the agent list them (RBAC)?", "err", err)
	}); err != nil {
		return nil, fmt.Errorf("clusterspiffeid: %w", err)
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { c.wake() }, UpdateFunc: func(any, any) { c.wake() }, DeleteFunc: func(any) { c.wake() }}
	for _, inf := range []cache.SharedIndexInformer{c.objs, c.nss, c.nodes} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, fmt.Errorf("clusterspiffeid: %w", err)
		}
	}
	if err := cfg.Pods.OnChange(c.wake); err != nil {
		return nil, err
	}
	c.status = newStatusWriter(cfg, c.objs)
	return c, nil
}

func (c *Controller) wake() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// HasSynced reports whether the controller has seen every object,
// namespace, this node and its pods once.
func (c *Controller) HasSynced() bool {
	return c.objs.HasSynced() && c.nss.HasSynced() && c.nodes.HasSynced() && c.cfg.Pods.HasSynced()
}

// Run watches and reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	c.dyn.Start(ctx.Done())
	c.kube.Start(ctx.Done())
	c.node.Start(ctx.Done())
	defer func() {
		c.dyn.Shutdown()
		c.kube.Shutdown()
		c.node.Shutdown()
		c.status.wait()
	}()
	// Events during the first lists only poke; the first reconcile waits
	// for every view to be whole, so no pod is judged on half a picture.
	if !cache.WaitForCacheSync(ctx.Done(), c.HasSynced) {
		return
	}
	for {
		c.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-c.poke:
		}
	}
}

// reconcile renders every object in force for every pod of the node and
// hands the Sink the result, in a fixed order (pods by namespace and
// name), so that an event that changes nothing hands it the same rules.
func (c *Controller) reconcile(ctx context.Context) {
	objs, stats := c.objects(ctx)
	node := c.thisNode()
	if node == nil {
		// As in SPIRE: without its node a pod's templates cannot be
		// rendered; the node's watch brings it and wakes us again.
		if !c.noNode {
			c.cfg.Logger.Warn("this node is not in the API server yet; no ClusterSPIFFEID identities until it is", "node", c.cfg.NodeName)
		}
		objs = nil
	}
	c.noNode = node == nil
	pods := c.cfg.Pods.Pods()
	slices.SortFunc(pods, func(a, b *corev1.Pod) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	var rules []registry.Compiled
	failing := map[string]string{}
	for _, pod := range pods {
		ns := c.namespace(pod.Namespace)
		if ns == nil || c.ignored(pod.Namespace) {
			continue
		}
		r, masked := c.rulesFor(objs, ns, pod, node, failing)
		rules = append(rules, r...)
		stats.Masked += masked
	}
	c.logFailures(failing)
	c.cfg.Sink.SetCluster(rules)
	stats.Rules, stats.RenderFailures = len(rules), len(failing)
	if c.cfg.Observe != nil {
		c.cfg.Observe(stats)
	}
}

// rulesFor renders, oldest object first, the objects selecting pod: a
// fallback object only if no other gives it an identity, and an ID an
// older object already gave it is masked, as SPIRE masks entries of the
// same pod and ID (so one pod never holds two SVIDs of one ID).
func (c *Controller) rulesFor(objs []*Parsed, ns *corev1.Namespace, pod *corev1.Pod, node *corev1.Node, failing map[string]string) (rules []registry.Compiled, masked int) {
	var target *Target
	var normal, fallback []registry.Compiled
	for _, p := range objs {
		if !p.Selects(ns, pod) {
			continue
		}
		if target == nil {
			target = NewTarget(pod, node)
		}
		rule, err := p.RenderFor(target, c.cfg.DefaultTTL)
		if err != nil {
			failing[p.Name+" "+pod.Namespace+"/"+pod.Name] = err.Error()
			continue
		}
		if p.Fallback {
			fallback = append(fallback, rule)
		} else {
			normal = append(normal, rule)
		}
	}
	if len(normal) == 0 {
		normal = fallback
	}
	seen := map[string]bool{}
	for _, r := range normal {
		id, _ := r.StaticID()
		if seen[id.String()] {
			masked++
			continue
		}
		seen[id.String()] = true
		rules = append(rules, r)
	}
	return rules, masked
}

// objects parses the objects of this agent's class, newest parse kept per
// resourceVersion, reports each verdict to the status writer, and returns
// those in force in SPIRE's order of preference: oldest first.
func (c *Controller) objects(ctx context.Context) ([]*Parsed, Stats) {
	var out []*Parsed
	var stats Stats
	seen := map[types.UID]bool{}
	for _, o := range c.objs.GetStore().List() {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		if !c.inClass(u) {
			stats.OtherClass++
			continue
		}
		seen[u.GetUID()] = true
		pa, ok := c.parsed[u.GetUID()]
		if !ok || pa.generation != u.GetGeneration() {
			pa = c.parse(u)
			c.parsed[u.GetUID()] = pa
		}
		c.status.report(ctx, u, pa.p, pa.err)
		if pa.err != nil {
			stats.Refused++
			continue
		}
		stats.Accepted++
		out = append(out, pa.p)
	}
	for uid := range c.parsed {
		if !seen[uid] {
			delete(c.parsed, uid)
		}
	}
	c.status.forget(seen)
	if stats.OtherClass != c.classes {
		// A SPIRE install's objects often carry a className; say so
		// rather than skip them without a word.
		c.cfg.Logger.Info("ClusterSPIFFEID objects of another className are not read by this agent", "objects", stats.OtherClass, "class_name", c.cfg.ClassName, "watch_classless", c.cfg.WatchClassless)
		c.classes = stats.OtherClass
	}
	slices.SortFunc(out, func(a, b *Parsed) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.UID, b.UID)
	})
	return out, stats
}

func (c *Controller) parse(u *unstructured.Unstructured) parsedAt {
	pa := parsedAt{generation: u.GetGeneration()}
	o, err := FromUnstructured(u)
	if err == nil {
		pa.p, err = Parse(o, c.cfg.Options)
	}
	pa.err = err
	switch {
	case err != nil:
		c.cfg.Logger.Error("ClusterSPIFFEID refused; no pod gets an identity from it until it is fixed", "name", u.GetName(), "err", err)
	case len(pa.p.Unsupported) > 0:
		c.cfg.Logger.Warn("ClusterSPIFFEID in force without fields sworn does not honour", "name", u.GetName(), "ignored", strings.Join(pa.p.Unsupported, ", "))
	default:
		c.cfg.Logger.Info("ClusterSPIFFEID in force", "name", u.GetName())
	}
	return pa
}

// inClass reports whether this agent reads the object, as SPIRE's
// controller manager decides by its className.
func (c *Controller) inClass(u *unstructured.Unstructured) bool {
	class, _, _ := unstructured.NestedString(u.Object, "spec", "className")
	if class == "" {
		return c.cfg.ClassName == "" || c.cfg.WatchClassless
	}
	return class == c.cfg.ClassName
}

func (c *Controller) ignored(ns string) bool {
	for _, re := range c.cfg.IgnoreNamespaces {
		if re.MatchString(ns) {
			return true
		}
	}
	return false
}

func (c *Controller) namespace(name string) *corev1.Namespace {
	o, ok, err := c.nss.GetStore().GetByKey(name)
	if err != nil || !ok {
		return nil
	}
	ns, _ := o.(*corev1.Namespace)
	return ns
}

// thisNode is the agent's node, or nil before it is seen.
func (c *Controller) thisNode() *corev1.Node {
	o, ok, err := c.nodes.GetStore().GetByKey(c.cfg.NodeName)
	if err != nil || !ok {
		return nil
	}
	n, _ := o.(*corev1.Node)
	return n
}

// logFailures logs a render failure when it first appears or changes,
// not at every reconcile.
func (c *Controller) logFailures(now map[string]string) {
	for k, msg := range now {
		if c.failing[k] != msg {
			obj, pod, _ := strings.Cut(k, " ")
			c.cfg.Logger.Warn("ClusterSPIFFEID gives this pod no identity", "name", obj, "pod", pod, "err", msg)
		}
	}
	c.failing = now
}
