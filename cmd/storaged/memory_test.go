package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/testutil"
)

// procStatusKiB reads one field (VmHWM, VmRSS) of /proc/<pid>/status.
func procStatusKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			kb, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// peakDuring returns how far the daemon's resident memory rose above what
// it was when fn started: the peak (VmHWM) is reset to the current RSS
// first (clear_refs 5), so an earlier peak does not hide this one.
func peakDuring(t *testing.T, pid int, fn func()) (rise int64) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS of the daemon: %v", err)
	}
	before := procStatusKiB(t, pid, "VmRSS")
	fn()
	return (procStatusKiB(t, pid, "VmHWM") - before) << 10
}

// TestReliabilityMemoryPeakPerRequest: a create of a 15 MiB record full of '<' on the
// memory backend raises the daemon's peak RSS by at most four times the
// body (it was 20 times: HTML escaping made the record six times its
// size, and it was copied at each step), and a find of five such records
// answers about their size, unescaped, without holding the answer twice.
func TestReliabilityMemoryPeakPerRequest(t *testing.T) {
	d := testutil.StartDaemon(t, "REPOSITORY_BACKEND=memory", "JOBQUEUE_BACKEND=memory")
	pid := d.Cmd.Process.Pid
	text := strings.Repeat("<p>a&b</p>", (15<<20)/10-10)
	body, _ := json.Marshal(map[string]string{"html": text})
	body = bytes.ReplaceAll(body, []byte(`\u003c`), []byte("<")) // the client sends it plain
	body = bytes.ReplaceAll(body, []byte(`\u003e`), []byte(">"))
	body = bytes.ReplaceAll(body, []byte(`\u0026`), []byte("&"))
	post := func(path string, b []byte) (int, []byte) {
		res, err := d.Client.Post("http://storaged"+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, out
	}

	var status int
	var rec []byte
	rise := peakDuring(t, pid, func() { status, rec = post("/v1/repos/big", body) })
	if status != http.StatusCreated {
		t.Fatalf("create: %d %.200s", status, rec)
	}
	t.Logf("create of %.1f MiB: peak RSS +%.1f MiB (%.1f× the body), answer %.1f MiB",
		mib(len(body)), mib(int(rise)), float64(rise)/float64(len(body)), mib(len(rec)))
	if rise > 4*int64(len(body)) {
		t.Errorf("a create of %.1f MiB raised the peak RSS by %.1f MiB, more than 4× the body", mib(len(body)), mib(int(rise)))
	}
	if bytes.Contains(rec, []byte(`\u003c`)) || len(rec) > len(body)+100 {
		t.Errorf("the record came back escaped or grown: %.1f MiB for a %.1f MiB body", mib(len(rec)), mib(len(body)))
	}

	for range 4 {
		if status, out := post("/v1/repos/big", body); status != http.StatusCreated {
			t.Fatalf("create: %d %.200s", status, out)
		}
	}
	var found []byte
	rise = peakDuring(t, pid, func() { status, found = post("/v1/repos/big/find", []byte(`{}`)) })
	if status != http.StatusOK {
		t.Fatalf("find: %d %.200s", status, found)
	}
	t.Logf("find of 5 records: answer %.1f MiB, peak RSS +%.1f MiB", mib(len(found)), mib(int(rise)))
	if bytes.Contains(found, []byte(`\u003c`)) {
		t.Error("find answered records with '<' escaped")
	}
	if want := 5 * len(body); len(found) < want || len(found) > want+5*100 {
		t.Errorf("find answered %d bytes for 5 records of %d", len(found), len(body))
	}
	var recs []map[string]any
	if err := json.Unmarshal(found, &recs); err != nil || len(recs) != 5 || recs[4]["html"] != text {
		t.Fatalf("find answer does not hold the 5 records: %v", err)
	}
	if rise > int64(len(found)) {
		t.Errorf("a find answering %.1f MiB raised the peak RSS by %.1f MiB: the answer was copied", mib(len(found)), mib(int(rise)))
	}
}

func mib(n int) float64 { return float64(n) / (1 << 20) }
