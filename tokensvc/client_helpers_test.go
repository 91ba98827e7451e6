package tokensvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// vendorURL is the token-service URL most client tests use. The TLS test
// server's client sends every *.example.com request to the test server, and
// its certificate covers *.example.com, so this is real https with no
// AllowInsecure. The code is a secret that must never be logged.
const (
	vendorSecret = "s3cr3t-code"
	vendorURL    = "https://vendor.example.com/token/mydmrapp?code=" + vendorSecret
)

// clientClock is the client tests' fake clock: it moves only when told.
type clientClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClientClock() *clientClock {
	return &clientClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clientClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clientClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// vendorStub is a vendor token service on loopback TLS whose answers the
// test chooses. By default the n-th request gets FCM token "tok-n" valid
// for an hour.
type vendorStub struct {
	t        *testing.T
	ts       *httptest.Server
	requests atomic.Int64
	arrived  chan *http.Request // every request, if the test reads them (buffered)

	mu      sync.Mutex
	respond func(w http.ResponseWriter, r *http.Request, n int64) // guarded by mu
	gate    chan struct{}                                         // guarded by mu; requests wait for it to close
}

func newVendorStub(t *testing.T) *vendorStub {
	t.Helper()
	s := &vendorStub{t: t, arrived: make(chan *http.Request, 2048)}
	s.respond = fcmAnswer(3600)
	s.ts = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.ts.Close)
	return s
}

func (s *vendorStub) serve(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	select {
	case s.arrived <- r.Clone(context.Background()):
	default:
	}
	s.mu.Lock()
	respond, gate := s.respond, s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	respond(w, r, n)
}

// setRespond replaces how requests are answered.
func (s *vendorStub) setRespond(f func(w http.ResponseWriter, r *http.Request, n int64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

// hold makes requests wait until the returned function is called.
func (s *vendorStub) hold() (release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.gate = gate
	s.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.mu.Lock()
			s.gate = nil
			s.mu.Unlock()
			close(gate)
		})
	}
	s.t.Cleanup(release)
	return release
}

// count is how many requests the stub has received.
func (s *vendorStub) count() int64 { return s.requests.Load() }

// fcmAnswer answers with FCM token "tok-n" valid for expires seconds.
func fcmAnswer(expires int64) func(http.ResponseWriter, *http.Request, int64) {
	return func(w http.ResponseWriter, _ *http.Request, n int64) {
		writeTestJSON(w, http.StatusOK, Credential{Type: TypeFCM, Project: "mydmrapp-jaso42", Token: fmt.Sprintf("tok-%d", n), Expires: expires})
	}
}

// statusAnswer answers with status, an error body and optional headers.
func statusAnswer(status int, header ...string) func(http.ResponseWriter, *http.Request, int64) {
	return func(w http.ResponseWriter, _ *http.Request, _ int64) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		writeTestJSON(w, status, ErrorResponse{Error: "upstream_error", Reason: "test says no to " + vendorSecret})
	}
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// clientEnv is a Client under test with its fake clock, log and fetch
// outcomes.
type clientEnv struct {
	c     *Client
	clock *clientClock
	logs  *lockedBuffer

	mu       sync.Mutex
	outcomes []string // guarded by mu
}

// newClientEnv builds a Client talking to stub (nil: cfg.HTTPClient as
// given). cfg's Policy, Clock, Logger and OnFetch are filled in when zero.
// The jitter draws its maximum, so that delays are the top of their range.
func newClientEnv(t *testing.T, stub *vendorStub, cfg ClientConfig) *clientEnv {
	t.Helper()
	env := &clientEnv{clock: newClientClock(), logs: &lockedBuffer{}}
	if cfg.Policy.AllowedHosts == nil && !cfg.Policy.AllowInsecure {
		cfg.Policy = URLPolicy{AllowedHosts: []string{"*.example.com"}}
	}
	if cfg.HTTPClient == nil && stub != nil {
		cfg.HTTPClient = stub.ts.Client()
	}
	if cfg.Clock == nil {
		cfg.Clock = env.clock
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.OnFetch == nil {
		cfg.OnFetch = func(outcome string, _ time.Duration) {
			env.mu.Lock()
			defer env.mu.Unlock()
			env.outcomes = append(env.outcomes, outcome)
		}
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.jitter = func(n int64) int64 { return n - 1 }
	env.c = c
	t.Cleanup(func() { c.Close() })
	return env
}

// fetchOutcomes returns the outcomes OnFetch has seen.
func (e *clientEnv) fetchOutcomes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.outcomes...)
}

// mustGet calls Get and fails the test on error.
func (e *clientEnv) mustGet(t *testing.T, url string) Credential {
	t.Helper()
	cred, err := e.c.Get(context.Background(), url)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return cred
}

// backoffUntil calls Get, expects a *BackoffError and returns how far in
// the future it says to retry.
func (e *clientEnv) backoffUntil(t *testing.T, url string) time.Duration {
	t.Helper()
	_, err := e.c.Get(context.Background(), url)
	var be *BackoffError
	if !errors.As(err, &be) {
		t.Fatalf("Get error %v, want a *BackoffError", err)
	}
	return be.Until.Sub(e.clock.Now())
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
