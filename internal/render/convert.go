package render

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
)

func labelSelectorFor(labels map[string]string) *metav1ac.LabelSelectorApplyConfiguration {
	return metav1ac.LabelSelector().WithMatchLabels(labels)
}

func labelSelector(s *metav1.LabelSelector) *metav1ac.LabelSelectorApplyConfiguration {
	ls := metav1ac.LabelSelector()
	if len(s.MatchLabels) > 0 {
		ls.WithMatchLabels(s.MatchLabels)
	}
	for _, e := range s.MatchExpressions {
		ls.WithMatchExpressions(metav1ac.LabelSelectorRequirement().WithKey(e.Key).WithOperator(e.Operator).WithValues(e.Values...))
	}
	return ls
}

// affinity converts a typed Affinity into its apply configuration through the unstructured form:
// the two have the same JSON shape, and affinity is too deep to copy field by field.
func affinity(a *corev1.Affinity) *corev1ac.AffinityApplyConfiguration {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(a)
	if err != nil {
		return nil
	}
	out := &corev1ac.AffinityApplyConfiguration{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u, out); err != nil {
		return nil
	}
	return out
}
