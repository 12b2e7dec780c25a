package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/client-go/rest"
)

// sample is one series of a Prometheus text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metricSet is one scrape.
type metricSet []sample

// scrape reads a Prometheus text endpoint.
func scrape(ctx context.Context, url string) (metricSet, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseMetrics(string(body))
}

// apiserverMetrics reads kube-apiserver's own /metrics (as cluster admin).
func apiserverMetrics(ctx context.Context, rc rest.Interface) (metricSet, error) {
	body, err := rc.Get().AbsPath("/metrics").SetHeader("Accept", "text/plain; version=0.0.4").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading kube-apiserver /metrics: %w", err)
	}
	return parseMetrics(string(body))
}

// parseMetrics parses the Prometheus text format, version 0.0.4: counters and gauges are all this
// program reads (prometheus/common's expfmt is not one of the module's direct dependencies).
func parseMetrics(text string) (metricSet, error) {
	var out metricSet
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d %q: %w", n+1, line, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " ,")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			eq := strings.Index(line, `="`)
			if eq < 0 {
				return s, fmt.Errorf("bad label")
			}
			name := line[:eq]
			line = line[eq+2:]
			var v strings.Builder
			closed := false
			for j := 0; j < len(line); j++ {
				c := line[j]
				if c == '\\' && j+1 < len(line) {
					j++
					switch line[j] {
					case 'n':
						v.WriteByte('\n')
					default:
						v.WriteByte(line[j])
					}
					continue
				}
				if c == '"' {
					line, closed = line[j+1:], true
					break
				}
				v.WriteByte(c)
			}
			if !closed {
				return s, fmt.Errorf("unterminated label value")
			}
			s.labels[name] = v.String()
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// sum adds the values of name's series.
func (m metricSet) sum(name string) float64 {
	total := 0.0
	for _, s := range m {
		if s.name == name {
			total += s.value
		}
	}
	return total
}

// by adds the values of name's series grouped by key(labels).
func (m metricSet) by(name string, key func(map[string]string) string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m {
		if s.name == name {
			out[key(s.labels)] += s.value
		}
	}
	return out
}

// delta returns after-before for every key that grew.
func delta(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// Metric names and label keys this program reads.
const (
	restRequests     = "rest_client_requests_total" // client-go, labels code, method, host
	reconcileTotal   = "controller_runtime_reconcile_total"
	activeWorkers    = "controller_runtime_active_workers"
	workqueueDepth   = "workqueue_depth"
	apiserverRequest = "apiserver_request_total" // labels verb, resource, subresource, code...
)

func methodAndCode(l map[string]string) string   { return l["method"] + " " + l["code"] }
func reconcileResult(l map[string]string) string { return l["result"] }

func verbAndResource(l map[string]string) string {
	r := l["resource"]
	if l["group"] != "" {
		r += "." + l["group"]
	}
	if l["subresource"] != "" {
		r += "/" + l["subresource"]
	}
	return l["verb"] + " " + r
}

// statusWrites picks the writes (any verb but GET, LIST and WATCH) to the RedisTraceExporter status
// subresource out of an apiserver_request_total breakdown by verbAndResource.
func statusWrites(byVerbResource map[string]float64) float64 {
	total := 0.0
	for k, v := range byVerbResource {
		verb, resource, _ := strings.Cut(k, " ")
		if resource == "redistraceexporters.tracestream.io/status" && verb != "GET" && verb != "LIST" && verb != "WATCH" {
			total += v
		}
	}
	return total
}

// redisStats is one INFO snapshot: calls per command (cmdstat_xinfo|stream -> xinfo|stream)
// and connections received.
type redisStats struct {
	calls       map[string]float64
	connections float64
}

// readRedisStats runs one INFO for both sections (Redis 7 takes several), so that this program
// adds exactly one INFO call between two snapshots.
func readRedisStats(ctx context.Context, c *redis.Client) (redisStats, error) {
	text, err := c.Info(ctx, "commandstats", "stats").Result()
	if err != nil {
		return redisStats{}, fmt.Errorf("INFO commandstats stats: %w", err)
	}
	st := redisStats{calls: map[string]float64{}}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if k == "total_connections_received" {
			st.connections, _ = strconv.ParseFloat(v, 64)
		}
		cmd, found := strings.CutPrefix(k, "cmdstat_")
		if !found {
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(kv, "calls="); ok {
				st.calls[cmd], _ = strconv.ParseFloat(n, 64)
			}
		}
	}
	if len(st.calls) == 0 {
		return st, fmt.Errorf("INFO commandstats: no cmdstat_ lines")
	}
	return st, nil
}

// redisDelta is what the manager sent Redis between two snapshots: the second snapshot's INFO
// is not counted yet, the first one's is, and is this program's.
func redisDelta(before, after redisStats) (map[string]float64, float64) {
	d := delta(before.calls, after.calls)
	if d["info"]--; d["info"] <= 0 {
		delete(d, "info")
	}
	return d, after.connections - before.connections
}
