// Package observability tests what ships for monitoring the product: the Grafana dashboards
// (docs/dashboards, copied into the chart), the alert rules (docs/alerts, rendered by the chart as
// a PrometheusRule) and the metrics they read. Every PromQL expression is parsed with the
// Prometheus parser, every rule file loads with rulefmt, and every metric an expression names
// must be served by a real exporter binary (against a real redis-server) or a real manager binary
// (against envtest and the same kind of Redis) scraped in the same test, so a renamed metric
// fails here instead of leaving an empty panel or an alert that never fires.
//
// The tests run helm from HELM and the API server from KUBEBUILDER_ASSETS; `make test` sets both.
package observability
