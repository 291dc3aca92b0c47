// Package clusterspiffeid turns the ClusterSPIFFEID objects of SPIRE's
// controller manager (group spire.spiffe.io, version v1alpha1) into rules
// for the pods of this agent's node, so a SPIRE user's objects work
// unchanged.
//
// It owns the object's schema as sworn reads it, its validation (Parse),
// the rendering of one object for one pod (Render: Go text/template over
// .TrustDomain, .ClusterName, .ClusterDomain, .PodMeta, .PodSpec,
// .NodeMeta and .NodeSpec, as SPIRE offers), and the Controller that
// watches objects, namespaces, this node and its pods and hands the
// registry the rules they make.
//
// Guarantees:
//   - A rendered SPIFFE ID is parsed with spiffeid and must be in the
//     agent's trust domain; a DNS name or selector that does not parse is
//     refused. A refusal costs only that pod that object's identity.
//   - A rule made here names the pod by its UID (k8s:pod-uid), so it can
//     only ever apply to a process the kubernetes attestor placed in that
//     pod on this node, plus any selectors the object's
//     workloadSelectorTemplates add.
//   - Templates get a subset of text/template (see template.go) and plain
//     data built from the pod's and node's metadata and spec: no methods
//     to call (so no template can rebind its rule to another pod), no
//     define or template, no print functions, range only over data at
//     most two deep, at most 4 KiB written. An object author cannot make
//     every node's agent spin or run out of memory.
//   - Rules are handed to the registry in a fixed order and only when
//     they changed, so a pod event that changes nothing wakes no stream.
//     Of two objects giving one pod the same ID the older wins (SPIRE's
//     masking); a fallback object applies only to pods no other object
//     renders an identity for.
//   - A malformed object is refused whole with the reason in its status
//     (condition Accepted=False) and the log, and leaves every other
//     object's rules alone. Fields sworn cannot honour (admin, downstream,
//     autoPopulateDNSNames) are named in the status and the log; a jwtTtl
//     below the agent's svid.jwt_ttl refuses the object, since sworn would
//     otherwise hand out JWT-SVIDs living longer than the object allows.
//   - Only objects of this agent's class are read (className; objects with
//     none only when watch_classless or no class is configured), and pods
//     in ignored namespaces (default kube-system, kube-public,
//     spire-system) get nothing.
package clusterspiffeid
