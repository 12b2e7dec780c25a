// Package install tests the two ways to install the operator, the Helm chart
// (charts/tracestream) and kustomize (config/default): they lint, reject bad values with errors
// that name the value, render the same objects, and are accepted by a real API server
// (server-side apply, dry run); the chart README lists every value. The autoscaling examples (examples/autoscaling) are dry-run there
// too, KEDA's objects against KEDA's own CRDs.
//
// The tests run helm from HELM, kubectl (for kustomize) from KUBEBUILDER_ASSETS, and read the
// prometheus-operator and KEDA CRDs from PROMETHEUS_OPERATOR_CRDS and KEDA_CRDS; `make test` sets
// them.
package install
