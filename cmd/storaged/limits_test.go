package main

import (
	"bytes"
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestMemoryLimitSetting(t *testing.T) {
	cases := []struct {
		value string
		want  int64
		bad   bool
	}{
		{"", 0, true}, // set but empty: refused, as every variable with a default
		{"auto", memoryLimitAuto, false},
		{"off", 0, false},
		{"536870912", 512 << 20, false},
		{"512MiB", 512 << 20, false},
		{"2GiB", 2 << 30, false},
		{"65536KiB", 64 << 20, false},
		{"1TiB", 1 << 40, false},
		{"10", 0, true}, // below the 32 MiB floor
		{"1GB", 0, true},
		{"-1GiB", 0, true},
		{"lots", 0, true},
		{"99999999999TiB", 0, true},
	}
	for _, c := range cases {
		cfg, err := LoadConfig(nil, env(map[string]string{"STORAGED_MEMORY_LIMIT": c.value}))
		if c.bad {
			if err == nil || !strings.Contains(err.Error(), "STORAGED_MEMORY_LIMIT") {
				t.Errorf("%q: error %v, want one naming STORAGED_MEMORY_LIMIT", c.value, err)
			}
			continue
		}
		if err != nil || cfg.MemoryLimit != c.want {
			t.Errorf("%q: limit %d %v, want %d", c.value, cfg.MemoryLimit, err, c.want)
		}
	}
}

// TestMemoryLimitApplied: the setting reaches the runtime; GOMEMLIMIT,
// which the runtime has applied already, is left alone; auto picks a limit
// from the cgroup or the RAM.
func TestMemoryLimitApplied(t *testing.T) {
	was := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(was) })
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))

	Config{MemoryLimit: 256 << 20}.applyMemoryLimit(env(nil), log)
	if got := debug.SetMemoryLimit(-1); got != 256<<20 {
		t.Fatalf("limit %d after STORAGED_MEMORY_LIMIT=256MiB", got)
	}
	debug.SetMemoryLimit(300 << 20) // as the runtime does for GOMEMLIMIT=300MiB
	Config{MemoryLimit: 256 << 20}.applyMemoryLimit(env(map[string]string{"GOMEMLIMIT": "300MiB"}), log)
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Fatalf("limit %d: GOMEMLIMIT was overridden", got)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	Config{MemoryLimit: memoryLimitAuto}.applyMemoryLimit(env(nil), log)
	if got := debug.SetMemoryLimit(-1); got == math.MaxInt64 || got < minMemoryLimit {
		t.Fatalf("auto set the limit to %d", got)
	}
	if !strings.Contains(logged.String(), "memory limit") {
		t.Fatalf("the limit was not logged: %s", logged.String())
	}
}

// TestGCPercentApplied: the daemon's pace of collection when GOGC is
// unset; a GOGC the runtime has applied is left alone.
func TestGCPercentApplied(t *testing.T) {
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	applyGCPercent(env(nil), log)
	if got := debug.SetGCPercent(150); got != defaultGCPercent {
		t.Fatalf("GC percent %d with GOGC unset, want %d", got, defaultGCPercent)
	}
	applyGCPercent(env(map[string]string{"GOGC": "150"}), log) // as the runtime has applied it
	if got := debug.SetGCPercent(-1); got != 150 {
		t.Fatalf("GC percent %d: GOGC=150 was overridden", got)
	}
}

func TestReliabilityMetricsQueuesSetting(t *testing.T) {
	if c, err := LoadConfig(nil, env(nil)); err != nil || c.MetricsQueues != 1000 {
		t.Fatalf("default %d %v", c.MetricsQueues, err)
	}
	if c, err := LoadConfig(nil, env(map[string]string{"STORAGED_METRICS_QUEUES": "50"})); err != nil || c.MetricsQueues != 50 {
		t.Fatalf("50: %d %v", c.MetricsQueues, err)
	}
	for _, bad := range []string{"0", "-1", "many", "1000000"} {
		if _, err := LoadConfig(nil, env(map[string]string{"STORAGED_METRICS_QUEUES": bad})); err == nil || !strings.Contains(err.Error(), "STORAGED_METRICS_QUEUES") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
