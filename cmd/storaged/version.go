package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Commit is the revision the binary was built from, set at build time
// with -ldflags "-X main.Commit=..." (make build, make dist). A plain
// `go build` leaves it empty and the toolchain's own record of the
// checkout (vcs.revision) stands in, so no binary answers "unknown"
// unless it was built outside a checkout.
var Commit = ""

// buildCommit is Commit, else the VCS stamp the Go toolchain embeds.
func buildCommit() string {
	if Commit != "" {
		return Commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// writeVersion prints what an operator pastes into a bug report: the
// release, the commit and the toolchain and platform it was built with.
func writeVersion(out io.Writer) {
	fmt.Fprintf(out, "storaged %s (commit %s, %s, %s/%s)\n", Version, buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
