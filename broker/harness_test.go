package broker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/testclient"
)

const testAdminKey = "test-admin-key-0123456789"

// harness is a real broker on loopback: badger in a temp dir, the WebSocket endpoint and the
// admin API on httptest servers, a fake clock, and logs captured for inspection.
type harness struct {
	t        testing.TB
	srv      *Server
	store    *registry.Badger
	clock    *fakeClock
	ws       *httptest.Server
	admin    *httptest.Server
	url      string
	logs     *syncBuffer
	closedCh chan *session
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t testing.TB, mutate ...func(*Config)) *harness {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := registry.OpenBadger(registry.BadgerConfig{Dir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	cfg := Config{Clock: clock, Logger: logger}
	for _, m := range mutate {
		m(&cfg)
	}
	if cfg.Push != nil && cfg.Push.Store == nil {
		cfg.Push.Store = store
	}
	srv, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if fc, ok := cfg.Clock.(*fakeClock); ok {
		clock = fc
	}
	h := &harness{t: t, srv: srv, store: store, clock: clock, logs: logs, closedCh: make(chan *session, 64)}
	srv.onClosed = func(s *session) {
		select {
		case h.closedCh <- s:
		default:
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/rewind", srv)
	h.ws = httptest.NewServer(mux)
	h.admin = httptest.NewServer(srv.AdminHandler(testAdminKey))
	h.url = "ws" + strings.TrimPrefix(h.ws.URL, "http") + "/rewind"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		h.ws.Close()
		h.admin.Close()
		store.Close()
		if t.Failed() {
			t.Logf("broker logs:\n%s", logs.String())
		}
	})
	return h
}

func (h *harness) addTerminal(id uint32, password string) {
	h.t.Helper()
	if _, err := h.store.PutTerminal(context.Background(), registry.Terminal{ID: id, Password: password}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) config(id uint32, password string) testclient.Config {
	return testclient.Config{URL: h.url, ID: id, Password: password}
}

// dial connects and authenticates a terminal; the client is closed at cleanup.
func (h *harness) dial(id uint32, password string, mutate ...func(*testclient.Config)) *testclient.Client {
	h.t.Helper()
	cfg := h.config(id, password)
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := testclient.Dial(ctx(h.t), cfg)
	if err != nil {
		h.t.Fatalf("terminal %d: dial: %v", id, err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed returns the next session whose connection ended.
func (h *harness) waitClosed() *session {
	h.t.Helper()
	select {
	case s := <-h.closedCh:
		return s
	case <-time.After(20 * time.Second):
		h.t.Fatal("no session closed")
		return nil
	}
}

// adminDo calls the admin API and returns status and body.
func (h *harness) adminDo(method, path, key, body string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.admin.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ctx is a per-test deadline for client I/O: generous, because the race detector on a shared
// 2-core machine is slow; a correct broker answers in milliseconds.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// fakeClock is a manually advanced Clock.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]struct{}
	// created receives a value each time a timer is created (dropped when nobody listens).
	created chan struct{}
}

type fakeTimer struct {
	c      *fakeClock
	at     time.Time
	f      func()
	active bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), timers: make(map[*fakeTimer]struct{}), created: make(chan struct{}, 1024)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f, active: true}
	c.timers[t] = struct{}{}
	select {
	case c.created <- struct{}{}:
	default:
	}
	return t
}

// waitTimer waits until some component has created a timer (e.g. a new connection's
// handshake deadline), so that Advance cannot run before it exists.
func (c *fakeClock) waitTimer(t testing.TB) {
	t.Helper()
	select {
	case <-c.created:
	case <-time.After(20 * time.Second):
		t.Fatal("no timer was created")
	}
}

// Advance moves time forward and runs the timers that fell due, in the caller's goroutine.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for t := range c.timers {
		if t.active && !t.at.After(c.now) {
			t.active = false
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	delete(t.c.timers, t)
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.at, t.active = t.c.now.Add(d), true
	t.c.timers[t] = struct{}{}
	return was
}
