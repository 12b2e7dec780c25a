package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Result is what one run measured.
type Result struct {
	CRs, Namespaces, Workers int
	Window                   time.Duration
	KubeVersion              string
	RedisVersion, RedisAddr  string
	BuildDuration            time.Duration
	ManagerPID               int
	// LoadAverage is /proc/loadavg's 1, 5 and 15 minute averages at the start: on a busy machine
	// compare runs with care.
	LoadAverage string

	// CreateDuration is from the first create to the last create's answer.
	CreateDuration time.Duration
	// ReconcileDuration is from the first create to the last resource counting as reconciled.
	ReconcileDuration time.Duration
	Latency           Latency
	// RSSBytes and HWMBytes are the manager's VmRSS and VmHWM once all were reconciled.
	RSSBytes, HWMBytes int64
	// CPUSeconds is the manager's utime+stime from the first create to all reconciled.
	CPUSeconds float64
	// Requests are the manager's API requests from before the first create to all reconciled.
	Requests Requests
	// Reconciles are the reconcile passes in the same phase, by result.
	Reconciles map[string]float64

	// Settled says whether the work queue drained (the follow-up passes done) before the steady
	// window began; SettledRequests, SettledReconciles and SettledCPUSeconds (from the first
	// create) then include those passes.
	Settled           bool
	SettleDuration    time.Duration
	SettledRequests   Requests
	SettledReconciles map[string]float64
	SettledCPUSeconds float64
	// APIServerCreate is kube-apiserver's apiserver_request_total by verb and resource from before
	// the first create to settled, for every client (this program's creates included).
	APIServerCreate map[string]float64

	// RefreshPeriod is how often the controller requeues each resource to read lag again.
	RefreshPeriod time.Duration
	Steady        Steady
	Final         Final

	ManagerExitCode     int
	ManagerStopDuration time.Duration
	ManagerLog          LogSummary
}

// Requests are client-go's rest_client_requests_total deltas.
type Requests struct {
	Total float64
	// ByRequest is keyed by "METHOD code", e.g. "PATCH 200".
	ByRequest map[string]float64
}

// Latency is the per-resource time from create to reconciled.
type Latency struct{ P50, P90, Max time.Duration }

// Steady is the steady-state window, with lag refreshes the only work.
type Steady struct {
	// Window is how long was measured; Aligned says that it began and ended at the end of a wave
	// of refreshes, spanning whole refresh periods.
	Window     time.Duration
	Aligned    bool
	CPUSeconds float64
	Requests   Requests
	Reconciles map[string]float64
	// APIServer is apiserver_request_total by verb and resource, every client's: the manager's
	// and kube-apiserver's own (this program only scrapes during the window).
	APIServer map[string]float64
	// RedisCommands are INFO commandstats call deltas, this program's own INFO taken out.
	RedisCommands    map[string]float64
	RedisConnections float64
}

// Final is the resources' status at the end of the window.
type Final struct {
	Total, Reconciled, RedisReachable, LagReported int
	// Ready counts "Status/Reason" of the Ready condition.
	Ready map[string]int
}

// LogSummary counts the manager's log lines by level and groups the errors.
type LogSummary struct {
	Lines  int
	Levels map[string]int
	// Errors counts error lines by message (and error, shortened).
	Errors map[string]int
	// RedisNotReachable counts "Redis not reachable" lines: each is a failed lag read.
	RedisNotReachable int
}

// mib converts the byte counts the report shows in MiB.
const mib = 1 << 20

func (r Result) perCR(v float64) float64 { return v / float64(r.CRs) }

// perCRMinute normalises a steady-state count to one resource and one minute.
func (r Result) perCRMinute(v float64) float64 {
	return v / float64(r.CRs) / r.Steady.Window.Minutes()
}

func sumValues(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

// BenchLine is the line `make bench` parses; its format is a contract.
func (r Result) BenchLine() string {
	return fmt.Sprintf("BENCH operatorscale crs=%d reconcile_s=%.3f manager_rss_mb=%.1f manager_hwm_mb=%.1f api_requests_per_cr=%.2f cpu_ms_per_cr=%.2f refresh_period_s=%.1f steady_cpu_ms_per_cr_min=%.3f steady_api_requests_per_cr_min=%.3f redis_cmds_per_cr_min=%.3f",
		r.CRs, r.ReconcileDuration.Seconds(), float64(r.RSSBytes)/mib, float64(r.HWMBytes)/mib,
		r.perCR(r.Requests.Total), r.perCR(r.CPUSeconds*1000), r.RefreshPeriod.Seconds(),
		r.perCRMinute(r.Steady.CPUSeconds*1000), r.perCRMinute(r.Steady.Requests.Total),
		r.perCRMinute(sumValues(r.Steady.RedisCommands)))
}

// WriteSummary writes the human-readable report: one section after another, a blank line between.
func (r Result) WriteSummary(w io.Writer) {
	r.writeHeader(w)
	_, _ = fmt.Fprintln(w)
	r.writeCreate(w)
	_, _ = fmt.Fprintln(w)
	r.writeSteady(w)
	_, _ = fmt.Fprintln(w)
	r.writeFinal(w)
	_, _ = fmt.Fprintln(w)
	r.writeManager(w)
}

// lines returns a printf that ends each line it writes to w.
func lines(w io.Writer) func(format string, args ...any) {
	return func(format string, args ...any) { _, _ = fmt.Fprintf(w, format+"\n", args...) }
}

// writeHeader writes what was run, against what, and what "reconciled" means.
func (r Result) writeHeader(w io.Writer) {
	p := lines(w)
	p("operatorscale: %d RedisTraceExporters in %d namespaces, created by %d goroutines", r.CRs, r.Namespaces, r.Workers)
	p("  kube-apiserver %s + etcd (envtest), redis-server %s on %s, manager pid %d (go build took %.1fs)",
		r.KubeVersion, r.RedisVersion, r.RedisAddr, r.ManagerPID, r.BuildDuration.Seconds())
	p("  load average at the start: %s (%d CPUs)", r.LoadAverage, runtime.NumCPU())
	p("  each reports the lag of stream %s, group %s (%d entries, %d read: lag %d), refreshed every %s",
		streamKey, groupName, seedEntries, seedRead, seedEntries-seedRead, r.RefreshPeriod)
	p("  reconciled = status.observedGeneration == metadata.generation and a Ready condition present")
	p("  (envtest runs no controller-manager and no kubelet: Deployments never get pods, Ready stays False)")
}

// writeCreate writes the create wave: from the first create to all reconciled, then the follow-up passes.
func (r Result) writeCreate(w io.Writer) {
	p := lines(w)
	p("Create -> reconciled")
	p("  creates                %d in %.2fs", r.CRs, r.CreateDuration.Seconds())
	p("  all reconciled after   %.2fs  (per resource, create -> reconciled: p50 %.2fs, p90 %.2fs, max %.2fs)",
		r.ReconcileDuration.Seconds(), r.Latency.P50.Seconds(), r.Latency.P90.Seconds(), r.Latency.Max.Seconds())
	p("  reconcile passes       %.0f (%.2f per resource)%s", sumValues(r.Reconciles), r.perCR(sumValues(r.Reconciles)), byResult(r.Reconciles))
	p("  manager CPU            %.2fs (%.2f ms per resource)", r.CPUSeconds, r.perCR(r.CPUSeconds*1000))
	p("  manager memory         VmRSS %.1f MiB, VmHWM %.1f MiB", float64(r.RSSBytes)/mib, float64(r.HWMBytes)/mib)
	p("  manager API requests   %.0f (%.2f per resource), by method and code:", r.Requests.Total, r.perCR(r.Requests.Total))
	writeTable(w, r.Requests.ByRequest, func(v float64) string { return fmt.Sprintf("%.2f per resource", r.perCR(v)) })
	if r.Settled {
		p("  follow-up passes (status writes and new children enqueue a resource again): the manager was idle %.2fs later", r.SettleDuration.Seconds())
	} else {
		p("  follow-up passes (status writes and new children enqueue a resource again): the queue did not drain within %s", settleTimeout)
	}
	p("  with them              %.0f passes (%.2f per resource), %.0f API requests (%.2f per resource), CPU %.2fs (%.2f ms per resource)",
		sumValues(r.SettledReconciles), r.perCR(sumValues(r.SettledReconciles)),
		r.SettledRequests.Total, r.perCR(r.SettledRequests.Total), r.SettledCPUSeconds, r.perCR(r.SettledCPUSeconds*1000))
	writeTable(w, r.SettledRequests.ByRequest, func(v float64) string { return fmt.Sprintf("%.2f per resource", r.perCR(v)) })
	p("  kube-apiserver requests by verb and resource, all clients (this program made the namespace and")
	p("  redistraceexporter creates and one LIST+WATCH of redistraceexporters):")
	writeTable(w, r.APIServerCreate, func(v float64) string { return fmt.Sprintf("%.2f per resource", r.perCR(v)) })
}

// writeSteady writes the steady-state window, per resource and minute.
func (r Result) writeSteady(w io.Writer) {
	p := lines(w)
	s := r.Steady
	perMin := func(v float64) string { return fmt.Sprintf("%.3f per resource per minute", r.perCRMinute(v)) }
	if s.Aligned {
		p("Steady state (%.1fs window from the end of one refresh wave to the end of another, lag refresh every %s)", s.Window.Seconds(), r.RefreshPeriod)
	} else {
		p("Steady state (%.1fs window, not aligned on refresh waves: the rates may be off by up to a wave; lag refresh every %s)", s.Window.Seconds(), r.RefreshPeriod)
	}
	p("  reconcile passes       %.0f (%s)%s", sumValues(s.Reconciles), perMin(sumValues(s.Reconciles)), byResult(s.Reconciles))
	p("  manager CPU            %.2fs (%.3f ms per resource per minute)", s.CPUSeconds, r.perCRMinute(s.CPUSeconds*1000))
	p("  manager API requests   %.0f (%s), by method and code:", s.Requests.Total, perMin(s.Requests.Total))
	writeTable(w, s.Requests.ByRequest, perMin)
	p("  of which status writes %.0f (%s)", statusWrites(s.APIServer), perMin(statusWrites(s.APIServer)))
	p("  kube-apiserver requests by verb and resource, all clients (this program only scrapes):")
	writeTable(w, s.APIServer, perMin)
	p("  Redis commands         %.0f (%s), connections %.0f (%s), by command:",
		sumValues(s.RedisCommands), perMin(sumValues(s.RedisCommands)), s.RedisConnections, perMin(s.RedisConnections))
	writeTable(w, s.RedisCommands, perMin)
}

// writeFinal writes the resources' status at the end.
func (r Result) writeFinal(w io.Writer) {
	p := lines(w)
	f := r.Final
	p("Status at the end")
	p("  reconciled %d/%d, RedisReachable=True %d/%d, lag %d of %s/%s reported %d/%d",
		f.Reconciled, f.Total, f.RedisReachable, f.Total, seedEntries-seedRead, streamKey, groupName, f.LagReported, f.Total)
	ready := map[string]float64{}
	for k, v := range f.Ready {
		ready["Ready "+k] = float64(v)
	}
	writeTable(w, ready, func(float64) string { return "" })
}

// writeManager writes how the manager stopped and what it logged.
func (r Result) writeManager(w io.Writer) {
	p := lines(w)
	l := r.ManagerLog
	p("Manager")
	p("  exit code %d, %.3fs after SIGTERM", r.ManagerExitCode, r.ManagerStopDuration.Seconds())
	p("  log: %d lines%s; %d \"Redis not reachable\"", l.Lines, byLevel(l.Levels), l.RedisNotReachable)
	if len(l.Errors) > 0 {
		p("  error lines by message:")
		errs := map[string]float64{}
		for k, v := range l.Errors {
			errs[k] = float64(v)
		}
		writeTable(w, errs, func(float64) string { return "" })
	}
}

// errorReport lists the error lines by message, for a failure message.
func (s LogSummary) errorReport() string {
	if len(s.Errors) == 0 {
		return fmt.Sprintf("manager log: %d lines, no errors", s.Lines)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "manager log: %d lines, error lines by message:\n", s.Lines)
	errs := map[string]float64{}
	for k, v := range s.Errors {
		errs[k] = float64(v)
	}
	writeTable(&b, errs, func(float64) string { return "" })
	return b.String()
}

// writeTable prints m's entries, largest first, at most 15.
func writeTable(w io.Writer, m map[string]float64, note func(float64) string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	for i, k := range keys {
		if i == 15 {
			_, _ = fmt.Fprintf(w, "      ... %d more\n", len(keys)-i)
			break
		}
		_, _ = fmt.Fprintf(w, "      %-60s %8.0f  %s\n", k, m[k], note(m[k]))
	}
	if len(keys) == 0 {
		_, _ = fmt.Fprintf(w, "      (none)\n")
	}
}

func byResult(m map[string]float64) string {
	if len(m) == 0 {
		return ""
	}
	return "; by result: " + strings.Join(sortedPairs(m, "%s %.0f"), ", ")
}

func byLevel(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + strings.Join(sortedPairs(m, "%s %d"), ", ") + ")"
}

// sortedPairs formats each key and value of m with format, in key order.
func sortedPairs[V any](m map[string]V, format string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf(format, k, m[k])
	}
	return parts
}

// klogLine matches klog's header (client-go logs through klog, e.g. "E1121 12:00:00.000000 ...").
var klogLine = regexp.MustCompile(`^([IWEF])\d{4} `)

// scanLog summarises the manager's log: controller-runtime's zap logger writes JSON lines.
func scanLog(path string) LogSummary {
	s := LogSummary{Levels: map[string]int{}, Errors: map[string]int{}}
	f, err := os.Open(path)
	if err != nil {
		return s
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		s.Lines++
		var entry struct {
			Level, Msg, Error string
		}
		if err := json.Unmarshal([]byte(line), &entry); err == nil && entry.Level != "" {
			s.Levels[entry.Level]++
			if entry.Msg == "Redis not reachable" {
				s.RedisNotReachable++
			}
			if entry.Level == "error" || entry.Level == "dpanic" || entry.Level == "panic" || entry.Level == "fatal" {
				s.Errors[shorten(entry.Msg+": "+entry.Error)]++
			}
			continue
		}
		if m := klogLine.FindStringSubmatch(line); m != nil {
			level := map[string]string{"I": "info", "W": "warn", "E": "error", "F": "fatal"}[m[1]]
			s.Levels["klog "+level]++
			if level == "error" || level == "fatal" {
				msg := line
				if i := strings.Index(line, "] "); i >= 0 {
					msg = line[i+2:]
				}
				s.Errors[shorten(msg)]++
			}
			continue
		}
		s.Levels["other"]++
	}
	return s
}

// shorten keeps error messages groupable: URLs, object names and numbers vary between lines.
var varying = regexp.MustCompile(`"?https?://[^\s"]+"?|rte-\d{4}|bench-\d{2}|\d+`)

func shorten(msg string) string {
	msg = varying.ReplaceAllStringFunc(msg, func(s string) string {
		switch {
		case strings.Contains(s, "://"):
			return "<url>"
		case strings.HasPrefix(s, "rte-"):
			return "rte-N"
		case strings.HasPrefix(s, "bench-"):
			return "bench-N"
		default:
			return "N"
		}
	})
	if len(msg) > 240 {
		msg = msg[:240] + "..."
	}
	return msg
}
