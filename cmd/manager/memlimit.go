package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The cgroup files that hold the container's memory limit: cgroup v2's, then v1's.
var memoryLimitFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// memoryLimitShare is the part of the container's memory limit the Go runtime aims to stay under:
// the rest is for what it does not manage (the binary's pages, C libraries).
const memoryLimitShare = 0.9

// limitMemory makes the garbage collector work harder as the heap nears the container's memory
// limit, instead of growing it to twice the live heap and being killed for it: a fleet that grows
// past what the chart's limit was sized for is collected more often, not restarted in a loop
// (docs/scale.md). GOMEMLIMIT, when set, is the Go runtime's own and wins. It returns the limit
// set, 0 if none.
func limitMemory(files []string) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(v, 10, 64)
		// "max" (v2) or a page-rounded int64 maximum (v1) when the container has no limit.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0
		}
		limit := int64(float64(n) * memoryLimitShare)
		debug.SetMemoryLimit(limit)
		return limit
	}
	return 0
}
