package service

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/sink"
)

// maxSpansLimit bounds GET /spans so that a debugging request cannot pull a whole stream.
const maxSpansLimit = 100

// spansHandler serves GET /spans?stream=KEY&limit=N (admin.debug): the newest entries of a
// stream with their fields; a json entry's data field is returned as JSON, not as a string.
func spansHandler(snk *sink.Sink) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream := r.URL.Query().Get("stream")
		if stream == "" {
			http.Error(w, "query parameter stream is required", http.StatusBadRequest)
			return
		}
		limit := int64(10)
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > maxSpansLimit {
				http.Error(w, "limit must be an integer from 1 to "+strconv.Itoa(maxSpansLimit), http.StatusBadRequest)
				return
			}
			limit = n
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		msgs, err := snk.Newest(ctx, stream, limit)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		type entry struct {
			ID     string         `json:"id"`
			Fields map[string]any `json:"fields"`
		}
		out := make([]entry, 0, len(msgs))
		for _, m := range msgs {
			fields := make(map[string]any, len(m.Values))
			for k, v := range m.Values {
				if s, ok := v.(string); ok && k == "data" && json.Valid([]byte(s)) {
					fields[k] = json.RawMessage(s)
					continue
				}
				fields[k] = v
			}
			out = append(out, entry{ID: m.ID, Fields: fields})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}
