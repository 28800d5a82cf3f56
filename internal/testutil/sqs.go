package testutil

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
)

// SQS test credentials and region: an emulator checks neither.
const (
	SQSRegion    = "us-east-1"
	SQSAccessKey = "test"
	SQSSecretKey = "test"
)

var sqsServer struct {
	once sync.Once
	url  string
	err  error
}

// SQSEndpoint is the SQS-compatible server the tests use:
// STORAGED_TEST_SQS_ENDPOINT, or a moto_server (moto, the Python AWS
// emulator, which speaks the AWS JSON protocol of the current SDK) that
// this test process starts once on a free port and that dies with it. A
// missing moto fails the test, never skips it.
func SQSEndpoint(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("STORAGED_TEST_SQS_ENDPOINT"); u != "" {
		return u
	}
	sqsServer.once.Do(func() { sqsServer.url, sqsServer.err = StartMoto() })
	if sqsServer.err != nil {
		t.Fatalf("no SQS emulator: %v\nInstall moto's server (pip install 'moto[server]'; the go-svc machine image has moto 5.2.1)\n"+
			"or point STORAGED_TEST_SQS_ENDPOINT at an SQS-compatible server.", sqsServer.err)
	}
	return sqsServer.url
}

// motoSerialized is moto_server behind one lock (see the script for why).
//
//go:embed moto_serialized.py
var motoSerialized []byte

// StartMoto starts moto's server, its SQS calls taken one at a time
// (moto_serialized.py), on a free port of 127.0.0.1 and waits until it
// answers. The server gets SIGKILL when the calling process dies.
func StartMoto() (string, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return "", fmt.Errorf("moto_server is not on PATH: %w", err)
	}
	python, err := motoPython(bin)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "storaged-moto-")
	if err != nil {
		return "", err
	}
	// Python has read the script by the time the server answers.
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "moto_serialized.py")
	if err := os.WriteFile(script, motoSerialized, 0o600); err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(python, script, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { _ = cmd.Wait() }() // reaps moto when it exits; it serves until then
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := http.Get(url + "/moto-api/"); err == nil {
			r.Body.Close()
			return url, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return "", fmt.Errorf("moto's server (%s %s) did not answer on %s within 30 s: %s", python, script, url, out.String())
}

// motoPython is the Python that runs moto_server: the interpreter its
// script names (a pip-installed script), else python3 on PATH (a pyenv
// shim), checked to import moto.
func motoPython(bin string) (string, error) {
	python := "python3"
	if b, err := os.ReadFile(bin); err == nil {
		first, _, _ := strings.Cut(string(b), "\n")
		if i := strings.TrimPrefix(first, "#!"); i != first && strings.Contains(i, "python") && !strings.Contains(i, " ") {
			python = i
		}
	}
	if out, err := exec.Command(python, "-c", "import moto.server, moto.sqs.models").CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s (beside %s) cannot import moto: %w: %s", python, bin, err, out)
	}
	return python, nil
}

// SQSClient is an SQS client of the test server with test credentials.
func SQSClient(t testing.TB) *awssqs.Client {
	t.Helper()
	return awssqs.New(awssqs.Options{Region: SQSRegion, BaseEndpoint: aws.String(SQSEndpoint(t)),
		Credentials: credentials.NewStaticCredentialsProvider(SQSAccessKey, SQSSecretKey, "")})
}

// SQSPrefix returns a fresh queue name prefix for the test and deletes
// every SQS queue under it at cleanup, so tests share one server without
// seeing each other.
func SQSPrefix(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "st" + hex.EncodeToString(b[:]) + "-"
	c := SQSClient(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := c.ListQueues(ctx, &awssqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix), MaxResults: aws.Int32(1000)})
		if err != nil {
			t.Logf("cleaning up SQS queues %s*: %v", prefix, err)
			return
		}
		for _, u := range r.QueueUrls {
			_, _ = c.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: aws.String(u)})
		}
	})
	return prefix
}

// SQSEnv is the environment of a daemon on the SQS job store of the test
// server, with a fresh prefix; the credentials come by the SDK's default
// chain (the AWS_* variables).
func SQSEnv(t testing.TB) []string {
	t.Helper()
	return []string{"JOBQUEUE_BACKEND=sqs", "SQS_ENDPOINT=" + SQSEndpoint(t), "SQS_REGION=" + SQSRegion,
		"SQS_QUEUE_PREFIX=" + SQSPrefix(t), "SQS_POLL_INTERVAL=100ms", "AWS_ACCESS_KEY_ID=" + SQSAccessKey, "AWS_SECRET_ACCESS_KEY=" + SQSSecretKey}
}

// CountingSQS is an SQS client that counts the receives made through it
// and the longest wait each asked, so that tests can tell a long poll
// from repeated short ones without timing anything.
type CountingSQS struct {
	*awssqs.Client
	mu       sync.Mutex
	receives []int32 // WaitTimeSeconds of each ReceiveMessage, in order
}

// NewCountingSQS is a CountingSQS on the test server.
func NewCountingSQS(t testing.TB) *CountingSQS {
	return &CountingSQS{Client: SQSClient(t)}
}

// ReceiveMessage counts the call, then makes it.
func (c *CountingSQS) ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, opts ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error) {
	c.mu.Lock()
	c.receives = append(c.receives, in.WaitTimeSeconds)
	c.mu.Unlock()
	return c.Client.ReceiveMessage(ctx, in, opts...)
}

// Seen is how many receives were made (or begun) since the last Receives.
func (c *CountingSQS) Seen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.receives)
}

// Receives returns the WaitTimeSeconds of every receive so far and
// forgets them.
func (c *CountingSQS) Receives() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.receives
	c.receives = nil
	return r
}
