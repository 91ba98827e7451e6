package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
)

// devServer is devHandler on a test server, with its fake providers and a client of its own.
type devServer struct {
	t   *testing.T
	sim *pushsim.Providers
	srv *httptest.Server
	hc  *http.Client
}

// startDevServer starts the server; configure, when set, runs before it starts. The test
// fails if goroutines are left behind once everything is closed.
func startDevServer(t *testing.T, configure func(*http.Server)) *devServer {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last
	sim := pushsim.New()
	srv := httptest.NewUnstartedServer(devHandler(sim, slog.New(slog.DiscardHandler)))
	if configure != nil {
		configure(srv.Config)
	}
	srv.Start()
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() { srv.Close(); sim.Close(); hc.CloseIdleConnections() })
	return &devServer{t: t, sim: sim, srv: srv, hc: hc}
}

func (d *devServer) register() string {
	d.t.Helper()
	resp, err := d.hc.Post(d.srv.URL+"/dev/devices?platform=fcm", "", nil)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var dev map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&dev); err != nil || dev["token"] == "" {
		d.t.Fatalf("register: %v %v", dev, err)
	}
	return dev["token"]
}

// push makes the fake FCM accept a push for device whose data "body" is body. It returns when
// the push is recorded; the dev buffer gets it from pushsim's handler goroutine.
func (d *devServer) push(device, body string) {
	d.t.Helper()
	msg, _ := json.Marshal(map[string]any{"message": map[string]any{
		"token": device, "data": map[string]string{"type": "wake", "body": body},
		"android": map[string]any{"priority": "high", "ttl": "60s", "collapse_key": "rewind-1"},
	}})
	req, _ := http.NewRequest(http.MethodPost, d.sim.FCM.URL()+"/v1/projects/rewind-dev/messages:send", strings.NewReader(string(msg)))
	req.Header.Set("Authorization", "Bearer "+d.sim.FCM.Issue("rewind-dev"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.sim.FCM.Client().Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("fake FCM answered %d", resp.StatusCode)
	}
}

// next polls /dev/pushes/next; body is the push's data "body" ("" for 204). A failed request
// is status 0.
func (d *devServer) next(ctx context.Context, query string) (status int, body string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.srv.URL+"/dev/pushes/next?"+query, nil)
	resp, err := d.hc.Do(req)
	if err != nil {
		d.t.Log(err)
		return 0, ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, ""
	}
	var p struct {
		Platform, Device, Priority, CollapseKey, Received string
		Data                                              map[string]string
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		d.t.Error(err)
	}
	if p.Platform != "fcm" || p.Priority != "high" || p.CollapseKey != "rewind-1" || p.Data["type"] != "wake" || p.Received == "" {
		d.t.Errorf("push JSON: %+v", p)
	}
	return resp.StatusCode, p.Data["body"]
}

func TestDevPushesNext(t *testing.T) {
	d := startDevServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := d.register(), d.register()

	// Pushes accepted before the first poll are kept, per device, in order.
	d.push(a, "a1")
	d.push(b, "b1")
	d.push(a, "a2")
	for _, want := range []string{"a1", "a2"} {
		if st, got := d.next(ctx, "device="+a+"&wait=10s"); st != 200 || got != want {
			t.Fatalf("a: %d %q, want %q", st, got, want)
		}
	}
	if st, got := d.next(ctx, "device="+b+"&wait=10s"); st != 200 || got != "b1" {
		t.Fatalf("b: %d %q", st, got)
	}

	// Nothing buffered: wait=0 answers at once; a waiting poll gets the next push.
	if st, _ := d.next(ctx, "device="+a+"&wait=0s"); st != http.StatusNoContent {
		t.Fatalf("empty poll: %d", st)
	}
	got := make(chan string, 1)
	go func() {
		_, body := d.next(ctx, "device="+a+"&wait=60s")
		got <- body
	}()
	d.push(a, "a3") // whether the poll is waiting yet or not, it gets this one
	if body := <-got; body != "a3" {
		t.Fatalf("long poll got %q", body)
	}

	// Beyond the buffer the oldest are dropped.
	for i := range devPushBuffer + 2 {
		d.push(b, fmt.Sprintf("b%d", i+2))
	}
	d.sim.Settle() // every push has reached the dev buffer (Close would drop queued ones)
	if st, got := d.next(ctx, "device="+b+"&wait=0s"); st != 200 || got != "b4" {
		t.Fatalf("after overflow, first push %d %q; want b4", st, got)
	}
	n := 1
	for {
		st, _ := d.next(ctx, "device="+b+"&wait=0s")
		if st != 200 {
			break
		}
		n++
	}
	if n != devPushBuffer {
		t.Fatalf("%d pushes buffered, want %d", n, devPushBuffer)
	}

	for query, want := range map[string]int{
		"device=nope":                  http.StatusNotFound,
		"":                             http.StatusBadRequest,
		"device=" + a + "&wait=soon":   http.StatusBadRequest,
		"device=" + a + "&wait=-1s":    http.StatusBadRequest,
		"device=" + a + "&wait=0.01ms": http.StatusNoContent,
	} {
		if st, _ := d.next(ctx, query); st != want {
			t.Errorf("%q: %d, want %d", query, st, want)
		}
	}
}

// A waiting poll ends when the server shuts down instead of holding its Shutdown up.
func TestDevPushesNextEndsOnShutdown(t *testing.T) {
	polling := make(chan struct{}, 1)
	d := startDevServer(t, func(s *http.Server) {
		inner := s.Handler
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/dev/pushes/next" {
				polling <- struct{}{} // the poll has reached the server
			}
			inner.ServeHTTP(w, r)
		})
	})
	dev := d.register() // the first request hooks the dev handler to the server's Shutdown
	done := make(chan int, 1)
	go func() {
		st, _ := d.next(context.Background(), "device="+dev+"&wait=60s")
		done <- st
	}()
	<-polling

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := d.srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if st := <-done; st != http.StatusServiceUnavailable {
		t.Fatalf("waiting poll: %d, want 503", st)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("shutdown took %v", took)
	}
}

// lineWriter hands every line written to it to lines.
type lineWriter struct {
	pw *io.PipeWriter
}

func newLineWriter(t *testing.T) (*lineWriter, <-chan string) {
	pr, pw := io.Pipe()
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return &lineWriter{pw}, lines
}

func (w *lineWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

// waitLine returns the lines up to and including the first that matches re.
func waitLine(t *testing.T, lines <-chan string, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var seen []string
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("phone output ended before %q; saw %q", re, seen)
			}
			t.Log("phone: " + l)
			seen = append(seen, l)
			if rx.MatchString(l) {
				return seen
			}
		case <-timeout:
			t.Fatalf("no line %q within 60s; saw %q", re, seen)
		}
	}
}

// TestDevWakeCycle is `broker --dev` with `testclient phone --once` and `testclient send`: the
// real binary, a phone that goes idle, a text from another terminal, the push, the wake-up,
// the delivery and its acknowledgement.
func TestDevWakeCycle(t *testing.T) {
	for _, platform := range []string{"fcm", "apns"} {
		t.Run(platform, func(t *testing.T) { testDevWakeCycle(t, platform) })
	}
}

func testDevWakeCycle(t *testing.T, platform string) {
	data := t.TempDir()
	p := startBroker(t, data, "--dev")
	keyBytes, _ := os.ReadFile(filepath.Join(data, "admin.key"))
	key := strings.TrimSpace(string(keyBytes))
	const phoneID, senderID = 262000201, 262000101
	adminCall(t, p, key, "PUT", fmt.Sprintf("/v1/terminals/%d", phoneID), "application/json", []byte(`{"password":"phone"}`))
	adminCall(t, p, key, "PUT", fmt.Sprintf("/v1/terminals/%d", senderID), "application/json", []byte(`{"password":"desk"}`))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, lines := newLineWriter(t)
	phoneDone := make(chan error, 1)
	go func() {
		err := testclient.RunDevPhone(ctx, testclient.DevPhoneConfig{
			Client:   testclient.Config{URL: p.wsURL, ID: phoneID, Password: "phone"},
			AdminURL: p.adminURL,
			Platform: platform,
			Once:     true,
		}, out)
		out.pw.Close()
		phoneDone <- err
	}()
	t.Cleanup(func() { // the phone is gone before the broker is killed
		cancel()
		if phoneDone != nil {
			<-phoneDone
		}
	})
	waitLine(t, lines, `^idle: .*waiting for a push`)

	// The other shell: testclient send. The phone answers the replayed text with
	// MESSAGE_STATUS delivered while the sender still waits for it.
	res, err := testclient.SendOnce(ctx, testclient.Config{URL: p.wsURL, ID: senderID, Password: "desk"},
		testclient.SendOptions{To: phoneID, Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != testclient.OutcomeDelivered || res.Status == nil || res.Status.Source != phoneID || res.Status.Status != protocol.StatusDelivered {
		t.Errorf("send: outcome %v status %+v", res.Outcome, res.Status)
	}

	seen := waitLine(t, lines, `^idle: .*waiting for a push`)
	err = <-phoneDone
	phoneDone = nil
	if err != nil {
		t.Fatalf("phone: %v", err)
	}
	got := strings.Join(seen, "\n")
	for _, want := range []string{
		`push received: type data enc aes128gcm \(\d+ bytes\)`,
		`opened: MESSAGE_TEXT from=262000101 to=262000201 private text="hello" seq=1 stored`,
		`reconnected, TERMINAL_WAKEUP first`,
		`received: MESSAGE_TEXT from=262000101 to=262000201 private text="hello" seq=1 stored`,
		`acknowledged stored deliveries up to seq 1`,
	} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("phone output lacks %q:\n%s", want, got)
		}
	}

	// The outbox is empty: the one text stored has been deleted by the acknowledgement, which
	// the broker handled before answering the phone's TERMINAL_IDLE.
	metrics := adminText(t, p, key, "/metrics")
	for _, want := range []string{`rewind_outbox_appends_total{result="ok"} 1`, `rewind_outbox_acked_total 1`,
		fmt.Sprintf(`rewind_pushes_total{outcome="sent",platform=%q} 1`, platform)} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func adminText(t *testing.T, p *brokerProcess, key, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.adminURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}
