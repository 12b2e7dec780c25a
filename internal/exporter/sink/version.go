package sink

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// minIDMPVersion is the first Redis with a usable idempotent XADD: IDMP arrived in 8.6.0, and
// 8.6.2 fixed its AOF rewrite and its expiry.
var minIDMPVersion = [3]int{8, 6, 2}

// serverVersion asks a server for its version: INFO server first, HELLO when the ACL user
// may not run INFO. It reports an empty version, and no IDMP, when both are denied.
func serverVersion(ctx context.Context, c *redis.Client) (version string, idmp bool) {
	if text, err := c.Info(ctx, "server").Result(); err == nil {
		return parseInfoServer(text)
	}
	reply, err := c.Do(ctx, "hello").Result()
	if err != nil {
		return "", false
	}
	return parseHello(reply)
}

// parseInfoServer reads the reply of INFO server. Valkey and other forks report a
// compatibility redis_version with a server_name of their own; none of them has IDMP.
func parseInfoServer(text string) (version string, idmp bool) {
	server := ""
	for line := range strings.Lines(text) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "redis_version":
			version = v
		case "server_name":
			server = v
		}
	}
	return version, (server == "" || server == "redis") && versionAtLeast(version, minIDMPVersion)
}

// parseHello reads the map HELLO returns (RESP3: map[any]any; RESP2: a flat list).
func parseHello(reply any) (version string, idmp bool) {
	fields := map[string]string{}
	switch r := reply.(type) {
	case map[any]any:
		for k, v := range r {
			fields[fmt.Sprint(k)] = fmt.Sprint(v)
		}
	case []any:
		for i := 0; i+1 < len(r); i += 2 {
			fields[fmt.Sprint(r[i])] = fmt.Sprint(r[i+1])
		}
	}
	version = fields["version"]
	return version, fields["server"] == "redis" && versionAtLeast(version, minIDMPVersion)
}

// versionAtLeast compares dotted versions numerically; an unparsable version is never new
// enough.
func versionAtLeast(version string, min [3]int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	var v [3]int
	for i, p := range parts {
		// "8.6.2-rc1" and similar: compare the leading number.
		end := strings.IndexFunc(p, func(r rune) bool { return r < '0' || r > '9' })
		if end == 0 {
			return false
		}
		if end > 0 {
			p = p[:end]
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return false
		}
		v[i] = n
	}
	for i := range v {
		if v[i] != min[i] {
			return v[i] > min[i]
		}
	}
	return true
}
