package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
)

// openStream subscribes to /dev/pushes/stream and returns its lines once the subscription is
// confirmed (the first line).
func openStream(t *testing.T, ctx context.Context, hc *http.Client, base string) (*bufio.Scanner, func()) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/dev/pushes/stream", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() || sc.Text() != `{"Subscribed":true}` {
		t.Fatalf("first line %q", sc.Text())
	}
	return sc, func() { resp.Body.Close() }
}

func TestDevPushesStream(t *testing.T) {
	d := startDevServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := d.register(), d.register()
	d.push(a, "before") // accepted before the subscription: not streamed
	s1, close1 := openStream(t, ctx, d.hc, d.srv.URL)
	defer close1()
	s2, close2 := openStream(t, ctx, d.hc, d.srv.URL)
	defer close2()
	d.push(a, "a1")
	d.push(b, "b1")
	d.push(a, "a2")
	for _, sc := range []*bufio.Scanner{s1, s2} {
		for _, want := range []struct{ dev, body string }{{a, "a1"}, {b, "b1"}, {a, "a2"}} {
			if !sc.Scan() {
				t.Fatalf("stream ended: %v", sc.Err())
			}
			var p devStreamPush
			if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if p.Device != want.dev || p.Data["body"] != want.body || p.Platform != "fcm" || p.Priority != "high" || p.Received == "" ||
				time.Since(time.Unix(0, p.ReceivedUnixNano)) > time.Minute {
				t.Errorf("line %s, want %s for %s", sc.Text(), want.body, want.dev)
			}
		}
	}
}

// A subscriber that stops reading is dropped with a final line once its buffer is full.
func TestDevPushesStreamBehind(t *testing.T) {
	sim := pushsim.New()
	defer sim.Close()
	closing := make(chan struct{})
	s := newDevStream(sim, closing, slog.New(slog.DiscardHandler))
	s.buffer = 4
	srv := httptest.NewServer(s)
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, closeStream := openStream(t, ctx, hc, srv.URL)
	defer closeStream()

	// The client reads nothing more: the socket buffers fill, then the subscriber's buffer.
	big := map[string]string{"body": strings.Repeat("x", 64<<10)}
	for n := 0; ; n++ {
		s.mu.Lock()
		left := len(s.subs)
		s.mu.Unlock()
		if left == 0 {
			break
		}
		if n > 1_000_000 {
			t.Fatal("subscriber never dropped")
		}
		s.publish(pushsim.Push{Platform: pushsim.PlatformFCM, DeviceToken: "d", Data: big, Received: time.Now()})
	}
	var last string
	lines := 0
	for sc.Scan() {
		last = sc.Text()
		lines++
	}
	if last != `{"End":"behind","Behind":1}` || lines < s.buffer {
		t.Fatalf("%d lines, last %.100q", lines, last)
	}
}

// Shutdown ends a stream with a final line instead of waiting for it.
func TestDevPushesStreamEndsOnShutdown(t *testing.T) {
	d := startDevServer(t, nil)
	d.register() // hooks the dev handler to the server's Shutdown
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, closeStream := openStream(t, ctx, d.hc, d.srv.URL)
	defer closeStream()
	done := make(chan error, 1)
	go func() { done <- d.srv.Config.Shutdown(ctx) }()
	if !sc.Scan() || sc.Text() != `{"End":"shutdown"}` {
		t.Fatalf("last line %q (%v)", sc.Text(), sc.Err())
	}
	if sc.Scan() {
		t.Fatalf("after the end: %q", sc.Text())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// testclient load against `broker --dev`: every terminal attaches as part of its setup, idle
// terminals are woken through /dev/pushes/stream, and durable publishes go to the active ones,
// with nothing lost.
func TestLoadWakeCyclesAndPublishes(t *testing.T) {
	data := t.TempDir()
	p := startBroker(t, data, "--dev", "--auth-failures", "1000000")
	keyBytes, _ := os.ReadFile(filepath.Join(data, "admin.key"))
	key := strings.TrimSpace(string(keyBytes))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := testclient.RunLoad(ctx, testclient.LoadConfig{
		URL:         p.wsURL,
		Admin:       &testclient.Admin{URL: p.adminURL, Key: key},
		Terminals:   20,
		Ramp:        1000,
		Sources:     2,
		IdleShare:   0.5,
		Attach:      true,
		Duration:    500 * time.Millisecond,
		Rate:        50,
		PublishRate: 50,
		WakeCycles:  30,
		Drain:       10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) != 0 || rep.Connected != 20 || rep.Idle == nil || rep.Idle.Idle != 10 || !rep.SetupAttach {
		t.Fatalf("report %+v idle %+v", rep, rep.Idle)
	}
	// An active terminal (the first ones stay active) kept the push channel it attached at setup.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.adminURL+"/v1/terminals/"+strconv.Itoa(testclient.DefaultLoadBaseID), nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var detail struct {
		Attach *struct {
			Platform string `json:"platform"`
			Name     string `json:"name"`
		} `json:"attach"`
	}
	err = json.NewDecoder(resp.Body).Decode(&detail)
	resp.Body.Close()
	if err != nil || detail.Attach == nil || detail.Attach.Platform != "fcm" || detail.Attach.Name != "load" {
		t.Errorf("terminal %d after an attaching load run: attach %+v (%v)", testclient.DefaultLoadBaseID, detail.Attach, err)
	}
	if pub := rep.Publish; pub == nil || pub.Published == 0 || pub.Delivered != pub.Published || pub.LatencyP99ms <= 0 || pub.DeliveryP99ms <= 0 {
		t.Errorf("publish %+v", rep.Publish)
	}
	if w := rep.Wake; w == nil || w.Published != 30 || w.Delivered != 30 || w.Pushes != 30 || w.Lost != 0 || w.LatencyP99ms < w.LatencyP50ms || w.LatencyP50ms <= 0 || w.PushP50ms <= 0 {
		t.Errorf("wake %+v", rep.Wake)
	}
}

// testclient load --processes against the real broker: the binary runs itself twice, each on
// half the terminals, and prints one report summing both.
func TestLoadSplitOverProcesses(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "testclient")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/rewind-broker/rewind/cmd/testclient").CombinedOutput(); err != nil {
		t.Fatalf("go build testclient: %v\n%s", err, out)
	}
	data := t.TempDir()
	p := startBroker(t, data, "--auth-failures", "1000000")
	keyBytes, _ := os.ReadFile(filepath.Join(data, "admin.key"))
	pid := strconv.Itoa(p.cmd.Process.Pid)
	out, err := exec.Command(bin, "load", "--url", p.wsURL, "--admin-url", p.adminURL, "--admin-key", strings.TrimSpace(string(keyBytes)),
		"--processes", "2", "--terminals", "12", "--rate", "60", "--duration", "500ms", "--broker-pid", pid, "--json").Output()
	if err != nil {
		t.Fatalf("testclient load --processes 2: %v\n%s", err, out)
	}
	var rep struct {
		testclient.LoadReport
		BrokerRSSBytes int64                   `json:"broker_rss_bytes"`
		Processes      []testclient.LoadReport `json:"processes"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Connected != 12 || len(rep.Processes) != 2 || rep.Processes[0].Connected != 6 || rep.Processes[1].Connected != 6 {
		t.Fatalf("connected %d over %d processes: %s", rep.Connected, len(rep.Processes), out)
	}
	if len(rep.Errors) != 0 || rep.TextsReceived == 0 || rep.TextsReceived != rep.TextsSent ||
		rep.TextsSent != rep.Processes[0].TextsSent+rep.Processes[1].TextsSent {
		t.Errorf("texts %d sent, %d received, errors %v", rep.TextsSent, rep.TextsReceived, rep.Errors)
	}
	if rep.BrokerRSSBytes == 0 || rep.Broker == nil || rep.Broker.PID != p.cmd.Process.Pid {
		t.Errorf("broker usage: RSS %d, %+v", rep.BrokerRSSBytes, rep.Broker)
	}
}
