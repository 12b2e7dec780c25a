// Package observability tests what ships for monitoring the product: the Grafana dashboards
// (docs/dashboards, copied into the chart), the alert rules (docs/alerts, rendered by the chart as
// a PrometheusRule, and unit-tested with promtool on series that fire each alert), the
// lag-driven autoscaling examples (examples/autoscaling) and the metrics they all read. Every
// PromQL expression is parsed with the Prometheus parser, every rule file loads with rulefmt, and
// every metric an expression names must be served by a real exporter binary (against a real
// redis-server) or a real manager binary (against envtest and the same kind of Redis) scraped in
// the same test, so a renamed metric fails here instead of leaving an empty panel, an alert that
// never fires or an autoscaler without a metric.
//
// The tests run helm from HELM, promtool from PROMTOOL and the API server from
// KUBEBUILDER_ASSETS; `make test` sets them.
package observability
