package controller

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/exporter/encode/streamkey"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/redislag"
	"github.com/tracestream/tracestream/internal/render"
)

// lagSample is one read of the resource's streams, kept between passes.
type lagSample struct {
	at         time.Time
	generation int64
	report     *redislag.Report
	err        error
	cause      redisconn.Cause
}

// observeRedis reads streams and lag, at most once per refresh interval (and at once after a
// spec change): the operator's load on Redis is bounded whatever the event rate.
func (r *Reconciler) observeRedis(ctx context.Context, obj *v1.RedisTraceExporter, s secrets, o *observed) {
	var last *lagSample
	r.remember(obj, func(m *memo) { last = m.lag })
	if last == nil || last.generation != obj.Generation || time.Since(last.at) >= render.LagRefresh(obj) {
		last = r.collectLag(ctx, obj, s)
		r.remember(obj, func(m *memo) { m.lag = last })
	}
	o.redisChecked, o.redisErr, o.redisCause = true, last.err, last.cause
	if last.report != nil {
		o.lag, o.lagTime = last.report, metav1.NewTime(last.at)
		// lagUpdateTime is when the report last changed (its API doc): an idle exporter's
		// status is not rewritten every interval.
		if obj.Status.LagUpdateTime != nil && equality.Semantic.DeepEqual(streamsStatus(last.report), obj.Status.Streams) {
			o.lagTime = *obj.Status.LagUpdateTime
		}
	}
}

// collectLag reads the streams and groups of the resource's Redis once.
func (r *Reconciler) collectLag(ctx context.Context, obj *v1.RedisTraceExporter, s secrets) *lagSample {
	sample := &lagSample{at: time.Now(), generation: obj.Generation}
	target, err := redisTarget(obj, s)
	if err != nil {
		// A CA or client certificate the handshake cannot use is a TLS cause.
		sample.err, sample.cause = err, redisconn.Classify(err).Cause()
		log.FromContext(ctx).Error(err, "Building the lag reader's Redis connection")
		return sample
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	q, err := lagQuery(obj)
	if err != nil {
		sample.err, sample.cause = err, redisconn.CauseOther
		return sample
	}
	rep, err := r.Collect(cctx, target, q)
	if err != nil {
		sample.err, sample.cause = err, redisconn.Classify(err).Cause()
		log.FromContext(ctx).Info("Redis not reachable", "class", sample.cause.String())
		return sample
	}
	sample.report = &rep
	return sample
}

// lagQuery reports the explicit streams, or those matching the key template with every
// placeholder as a wildcard. The template parses: the rendered configuration was validated
// before this pass observed Redis.
func lagQuery(obj *v1.RedisTraceExporter) (redislag.Query, error) {
	q := redislag.Query{Streams: obj.Spec.Lag.Streams, Groups: obj.Spec.Lag.Groups, MaxStreams: render.LagMaxStreams(obj)}
	if len(q.Streams) == 0 {
		tmpl := obj.Spec.Stream.KeyTemplate
		if tmpl == "" {
			tmpl = v1.DefaultKeyTemplate
		}
		t, err := streamkey.Parse(tmpl)
		if err != nil {
			return q, err
		}
		q.Pattern = t.Pattern()
	}
	return q, nil
}
