package controller_test

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

type redisXAdd struct {
	stream string
	i      int
}

func (x redisXAdd) args() *redis.XAddArgs {
	return &redis.XAddArgs{Stream: x.stream, Values: []string{"n", fmt.Sprint(x.i)}}
}

func readArgs(stream, group string, n int64) *redis.XReadGroupArgs {
	return &redis.XReadGroupArgs{Group: group, Consumer: "c1", Streams: []string{stream, ">"}, Count: n}
}
