// Package gitops tests the health that GitOps tools read from a RedisTraceExporter: the Argo CD
// health check in docs/gitops/argocd (run in gopher-lua the way Argo CD runs it) and the kstatus
// result that Flux computes from the same objects. Both read the testdata of the Argo CD check, so
// one set of realistic objects pins what both tools report. docs/gitops.md is the user's guide.
package gitops
