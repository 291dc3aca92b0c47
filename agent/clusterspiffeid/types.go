package clusterspiffeid

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resource is the ClusterSPIFFEID resource.
var Resource = schema.GroupVersionResource{Group: "spire.spiffe.io", Version: "v1alpha1", Resource: "clusterspiffeids"}

// ClusterSPIFFEID is the object as SPIRE's controller manager publishes
// it. The JSON names are SPIRE's; they are the compatibility contract.
type ClusterSPIFFEID struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	Spec   Spec   `json:"spec"`
	Status Status `json:"status,omitempty"`
}

// Spec is ClusterSPIFFEIDSpec.
type Spec struct {
	SPIFFEIDTemplate          string                `json:"spiffeIDTemplate"`
	TTL                       metav1.Duration       `json:"ttl,omitempty"`
	JWTTTL                    metav1.Duration       `json:"jwtTtl,omitempty"`
	DNSNameTemplates          []string              `json:"dnsNameTemplates,omitempty"`
	WorkloadSelectorTemplates []string              `json:"workloadSelectorTemplates,omitempty"`
	FederatesWith             []string              `json:"federatesWith,omitempty"`
	NamespaceSelector         *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	PodSelector               *metav1.LabelSelector `json:"podSelector,omitempty"`
	Admin                     bool                  `json:"admin,omitempty"`
	Downstream                bool                  `json:"downstream,omitempty"`
	AutoPopulateDNSNames      bool                  `json:"autoPopulateDNSNames,omitempty"`
	ClassName                 string                `json:"className,omitempty"`
	Fallback                  bool                  `json:"fallback,omitempty"`
	Hint                      string                `json:"hint,omitempty"`
}

// Status is SPIRE's status (stats, which SPIRE's controller manager
// writes and sworn leaves alone) and sworn's conditions. Under SPIRE's
// own CRD the conditions are pruned by the API server; the log and the
// sworn_cluster_spiffeids metric still say the same.
type Status struct {
	Stats      map[string]int     `json:"stats,omitempty"`
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ConditionAccepted is the condition sworn sets: True when the object is
// in force (its message naming any field sworn does not honour), False
// with the reason when it is refused.
const ConditionAccepted = "Accepted"

// Reasons of the Accepted condition.
const (
	ReasonValid       = "Valid"
	ReasonUnsupported = "UnsupportedFields"
	ReasonInvalid     = "InvalidSpec"
)

// FromUnstructured decodes an object the dynamic client returned.
func FromUnstructured(u *unstructured.Unstructured) (*ClusterSPIFFEID, error) {
	var o ClusterSPIFFEID
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &o); err != nil {
		return nil, fmt.Errorf("clusterspiffeid: %s: %w", u.GetName(), err)
	}
	return &o, nil
}
