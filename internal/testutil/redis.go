package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisURL is the Redis the tests use: STORAGED_TEST_REDIS_URL, or the
// local default.
func RedisURL() string {
	if u := os.Getenv("STORAGED_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// RedisPrefix returns a fresh key prefix for the test and deletes every
// key under it at cleanup, so tests share one Redis without seeing each
// other. An unreachable Redis fails the test, never skips it.
func RedisPrefix(t testing.TB) string {
	t.Helper()
	opts, err := goredis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("STORAGED_TEST_REDIS_URL: %v", err)
	}
	rdb := goredis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		t.Fatalf("Redis is not reachable at %s: %v\n"+
			"Start it (Debian: redis-server --daemonize yes, or .ci/run does it)\n"+
			"or point STORAGED_TEST_REDIS_URL at one.", RedisURL(), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "storaged-test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Logf("cleaning up Redis keys %s:*: %v", prefix, err)
		}
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			rdb.Del(ctx, keys[:n]...)
			keys = keys[n:]
		}
	})
	return prefix
}
