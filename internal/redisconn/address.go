package redisconn

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// The address schemes. An address without one is plaintext, as with redis://.
const (
	schemePlain = "redis://"
	schemeTLS   = "rediss://"
)

// AsksTLS reports whether addr has the rediss:// scheme, which turns TLS on.
func AsksTLS(addr string) bool { return strings.HasPrefix(addr, schemeTLS) }

// ParseAddress accepts host:port, redis://host:port and rediss://host:port, the host a name,
// an IPv4 address or a bracketed IPv6 address ([::1]:6379), the port from 1 to 65535. It
// returns host:port, as go-redis dials it, and whether the scheme asks for TLS. An address
// holding credentials (redis://user:password@host:port) is refused without being repeated
// in the error: the error is logged and shown in the operator's status.
func ParseAddress(addr string) (hostPort string, asksTLS bool, err error) {
	asksTLS = AsksTLS(addr)
	hostPort = strings.TrimPrefix(strings.TrimPrefix(addr, schemeTLS), schemePlain)
	if strings.Contains(hostPort, "@") {
		return "", false, errors.New("must not hold credentials (an address is logged); give them separately")
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil || host == "" || strings.ContainsAny(host, "/ \t") || strings.Contains(hostPort, "://") {
		return "", false, fmt.Errorf("%q is not host:port, redis://host:port or rediss://host:port", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", false, fmt.Errorf("%q: port %q is not a number between 1 and 65535", addr, port)
	}
	return hostPort, asksTLS, nil
}

// parseAddresses parses every address, reporting each bad one under its index, and refuses
// a mix of rediss:// and plaintext addresses: go-redis has one TLS configuration for every
// node.
func parseAddresses(in []string, prefix string) (hostPorts []string, asksTLS bool, errs []error) {
	if len(in) == 0 {
		return nil, false, []error{fieldError(prefix, "addresses", "at least one address is required")}
	}
	var secure, plain int
	for i, a := range in {
		hostPort, tls, err := ParseAddress(a)
		if err != nil {
			errs = append(errs, fieldError(prefix, fmt.Sprintf("addresses[%d]", i), err.Error()))
			continue
		}
		if tls {
			secure++
		} else {
			plain++
		}
		hostPorts = append(hostPorts, hostPort)
	}
	if secure > 0 && plain > 0 {
		errs = append(errs, fieldError(prefix, "addresses",
			"mixes rediss:// and plaintext addresses; TLS is all or nothing, one configuration for every node"))
	}
	return hostPorts, secure > 0, errs
}

// fieldError is a problem with one setting, named by its key: the prefix (such as "redis.")
// and the key as the exporter's configuration and the RedisTraceExporter's spec.redis spell it.
func fieldError(prefix, key, msg string) error {
	return fmt.Errorf("%s%s: %s", prefix, key, msg)
}

// wrapField is fieldError for an error from elsewhere, which stays visible to errors.Is.
func wrapField(prefix, key string, err error) error {
	return fmt.Errorf("%s%s: %w", prefix, key, err)
}
