// Package redisconn is the one home of what both planes need to reach Redis: addresses and
// modes and their rules, TLS and credentials, go-redis options for every mode, and the class
// of a Redis error (whether it is retryable, its metric label, and what it says to the
// operator's RedisReachable condition).
package redisconn
