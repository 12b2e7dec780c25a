package sink

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// slogLogger puts go-redis's own log lines (dial failures, pool events) into the exporter's
// structured log at debug level: the exporter already logs each error class once as a warning,
// and go-redis would otherwise print every failed dial to stderr unstructured.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// SetLogger routes go-redis's process-wide logger to log.
func SetLogger(log *slog.Logger) { redis.SetLogger(slogLogger{log}) }
