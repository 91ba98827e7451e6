package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient"
)

func TestHelpAndUsageErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb, nil); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"USAGE", "--listen", "$REWIND_LISTEN", "--encryption-key-file", "SIGTERM", "EXAMPLES", "--wake-workers  ($REWIND_WAKE_WORKERS)", "GOMEMLIMIT"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	for _, args := range [][]string{{"--nope"}, {"stray"}, {"--tls-cert", "x"}, {"--log-level", "loud"}, {"--max-datagram", "10"},
		{"--wake-workers", "0"}, {"--wake-workers", "4097"}} {
		errb.Reset()
		if code := run(append(args, "--data", t.TempDir()), &out, &errb, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	t.Setenv("REWIND_KEEPALIVE_TIMEOUT", "soon")
	if code := run(nil, &out, &errb, nil); code != 2 || !strings.Contains(errb.String(), "REWIND_KEEPALIVE_TIMEOUT") {
		t.Fatalf("bad env value: exit %d %s", code, errb.String())
	}
}

// brokerProcess is the real broker binary running on loopback.
type brokerProcess struct {
	cmd      *exec.Cmd
	stdout   *lockedBuffer
	wsURL    string
	adminURL string
	exited   chan struct{} // closed when the process has exited
	waitErr  error
}

var buildOnce struct {
	path string
	err  error
}

func buildBroker(t *testing.T) string {
	t.Helper()
	if buildOnce.path == "" && buildOnce.err == nil {
		dir, err := os.MkdirTemp("", "broker-bin")
		if err != nil {
			t.Fatal(err)
		}
		buildOnce.path = filepath.Join(dir, "broker")
		out, err := exec.Command("go", "build", "-race", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = err
			t.Fatalf("build: %v\n%s", err, out)
		}
	}
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

var listenRE = regexp.MustCompile(`terminals=(ws://\S+) admin=(http://\S+)`)

func startBroker(t *testing.T, dataDir string, extra ...string) *brokerProcess {
	t.Helper()
	args := append([]string{"--data", dataDir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--drain-timeout", "3s"}, extra...)
	cmd := exec.Command(buildBroker(t), args...)
	p := &brokerProcess{cmd: cmd, stdout: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout = p.stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	select {
	case m := <-found:
		p.wsURL, p.adminURL = m[1]+"", m[2]
	case <-p.exited:
		t.Fatalf("broker exited: %v", p.waitErr)
	case <-time.After(60 * time.Second):
		t.Fatal("broker did not report its listeners")
	}
	return p
}

func TestBinaryFirstRunSessionAndDrain(t *testing.T) {
	data := t.TempDir()
	p := startBroker(t, data)

	keyPath := filepath.Join(data, "admin.key")
	st, err := os.Stat(keyPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.key: %v %v", st, err)
	}
	keyBytes, _ := os.ReadFile(keyPath)
	key := strings.TrimSpace(string(keyBytes))
	if !strings.Contains(p.stdout.String(), key) || !strings.Contains(p.stdout.String(), "Next steps") {
		t.Fatalf("first run did not print the key and next steps:\n%s", p.stdout.String())
	}

	req, _ := http.NewRequest("PUT", p.adminURL+"/v1/terminals/262000101", strings.NewReader(`{"password":"s3cret","name":"phone"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("add terminal: %v %v", resp, err)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := testclient.Dial(ctx, testclient.Config{URL: p.wsURL, ID: 262000101, Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	d, err := c.Recv(ctx)
	if err != nil || d.Type != protocol.TypeRedirection {
		t.Fatalf("want REDIRECTION on SIGTERM, got %v %v", d, err)
	}
	if _, err := c.Recv(ctx); testclient.CloseCode(err) != 1012 {
		t.Fatalf("want close 1012, got %v", err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Fatalf("exit after drain: %v", p.waitErr)
		}
	case <-time.After(3*time.Second + shutdownGrace + 10*time.Second):
		t.Fatal("broker did not exit within its bound")
	}
	t.Logf("drained and exited in %v", time.Since(start).Round(time.Millisecond))

	// Second run on the same data: the key is not printed again and the terminal is still there.
	p2 := startBroker(t, data)
	if strings.Contains(p2.stdout.String(), key) {
		t.Fatal("admin key printed on a later run")
	}
	c2, err := testclient.Dial(ctx, testclient.Config{URL: p2.wsURL, ID: 262000101, Password: "s3cret"})
	if err != nil {
		t.Fatalf("terminal lost across restart: %v", err)
	}
	c2.Close()
}

func TestBinaryEncryptionKey(t *testing.T) {
	data := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "registry.key")
	os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	p := startBroker(t, data, "--encryption-key-file", keyFile)
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	// The wrong key is a configuration error with a clear message.
	wrong := filepath.Join(t.TempDir(), "wrong.key")
	os.WriteFile(wrong, []byte(strings.Repeat("cd", 32)), 0o600)
	var out, errb bytes.Buffer
	code := run([]string{"--data", data, "--encryption-key-file", wrong, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, &out, &errb, nil)
	if code != 2 || !strings.Contains(errb.String(), "encryption key") {
		t.Fatalf("wrong key: exit %d\n%s", code, errb.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
