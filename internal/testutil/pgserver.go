package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// PGServer is a private PostgreSQL instance for tests that stop and
// restart the server, which they must never do to the shared one.
type PGServer struct {
	Dir  string
	Port int
	bin  string
	t    testing.TB
}

// StartPGServer initdb's and starts a server on a free port. It fails
// (never skips) when the PostgreSQL server binaries are missing.
func StartPGServer(t testing.TB) *PGServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		t.Fatal("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install the postgresql package (.ci/run does)")
	}
	sort.Strings(bins)
	s := &PGServer{bin: filepath.Dir(bins[len(bins)-1]), t: t}
	dir, err := os.MkdirTemp("", "storaged-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.Dir = filepath.Join(dir, "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal("running as root needs a postgres user to run the private server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Mkdir(s.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(s.Dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	s.run("initdb", "-D", s.Dir, "-A", "trust", "-U", "postgres", "--no-sync")
	s.Start()
	t.Cleanup(func() { s.ctl("stop", "-m", "immediate") })
	return s
}

// URL is the connection URL of the postgres database.
func (s *PGServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", s.Port)
}

// Start starts the server and waits until it accepts connections.
func (s *PGServer) Start() {
	s.ctl("start", "-w", "-t", "30", "-l", filepath.Join(s.Dir, "log"),
		"-o", fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off", s.Port))
}

// Stop stops the server at once (clients are cut off).
func (s *PGServer) Stop() { s.ctl("stop", "-w", "-m", "fast") }

func (s *PGServer) ctl(args ...string) {
	s.run("pg_ctl", append([]string{"-D", s.Dir}, args...)...)
}

func (s *PGServer) run(name string, args ...string) {
	s.t.Helper()
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill() // the error below says what went wrong
		<-done
	}
	if err != nil {
		s.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
