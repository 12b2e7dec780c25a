// Package install tests the two ways to install the operator, the Helm chart
// (charts/tracestream) and kustomize (config/default): they lint, reject bad values with errors
// that name the value, render the same objects, and are accepted by a real API server
// (server-side apply, dry run).
//
// The tests run helm from HELM and kubectl (for kustomize) from KUBEBUILDER_ASSETS; `make test`
// sets both.
package install
