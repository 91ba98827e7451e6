package broker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/testclient"
)

// sseMsg is one Server-Sent Events message (or comment) as a client sees it.
type sseMsg struct {
	id, event, data, comment string
}

func (m sseMsg) ev(t testing.TB) Event {
	t.Helper()
	var e Event
	if err := json.Unmarshal([]byte(m.data), &e); err != nil {
		t.Fatalf("event data %q: %v", m.data, err)
	}
	if strconv.FormatUint(e.ID, 10) != m.id || e.Type != m.event {
		t.Fatalf("message id %q event %q carries event %d %q", m.id, m.event, e.ID, e.Type)
	}
	return e
}

// sseStream is an open event stream read by a goroutine of its own.
type sseStream struct {
	msgs   chan sseMsg
	cancel context.CancelFunc
	done   chan struct{}
	status int
}

// openEvents opens the event stream at url with header Last-Event-ID (when lastID is not "").
// It is closed at cleanup.
func openEvents(t testing.TB, url, lastID string) *sseStream {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(c, "GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &sseStream{msgs: make(chan sseMsg, 4096), cancel: cancel, done: make(chan struct{}), status: resp.StatusCode}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode == 200 && ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	go func() {
		defer close(s.done)
		defer close(s.msgs)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m != (sseMsg{}) {
					select {
					case s.msgs <- m:
					case <-c.Done():
						return
					}
				}
				m = sseMsg{}
			case strings.HasPrefix(line, ": "):
				m.comment = line[2:]
			case strings.HasPrefix(line, "id: "):
				m.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				m.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				m.data = line[6:]
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	<-s.done
}

// next returns the next message; ok is false when the stream ended.
func (s *sseStream) next(t testing.TB) (sseMsg, bool) {
	t.Helper()
	select {
	case m, ok := <-s.msgs:
		return m, ok
	case <-time.After(20 * time.Second):
		t.Fatal("no event-stream message")
		return sseMsg{}, false
	}
}

// nextEvent skips comments and meta messages and returns the next event.
func (s *sseStream) nextEvent(t testing.TB) Event {
	t.Helper()
	for {
		m, ok := s.next(t)
		if !ok {
			t.Fatal("event stream ended")
		}
		if m.id != "" {
			return m.ev(t)
		}
	}
}

// rest reads a stream that ends by itself (follow=false) to its end.
func (s *sseStream) rest(t testing.TB) []sseMsg {
	t.Helper()
	var out []sseMsg
	for {
		m, ok := s.next(t)
		if !ok {
			return out
		}
		out = append(out, m)
	}
}

func eventsOf(t testing.TB, msgs []sseMsg) (evs []Event, meta []string) {
	t.Helper()
	for _, m := range msgs {
		switch {
		case m.id != "":
			evs = append(evs, m.ev(t))
		case m.event != "":
			meta = append(meta, m.event)
		}
	}
	return evs, meta
}

func eventsServer(t testing.TB, srv *Server) string {
	t.Helper()
	ts := httptest.NewServer(srv.EventsHandler())
	t.Cleanup(ts.Close) // runs after the streams opened later are closed
	return ts.URL
}

func eventIDs(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// TestEventStreamResume follows a real wake cycle on the event stream, disconnects, lets more
// happen, and resumes with Last-Event-ID: exactly the missed events, contiguous, none twice.
func TestEventStreamResume(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(bob, "b")
	url := eventsServer(t, w.srv)
	first := openEvents(t, url+"?after=0", "")
	if m, _ := first.next(t); m.event != "hello" || !strings.Contains(m.data, w.srv.EventStream()) {
		t.Fatalf("first message %+v, want hello with the stream id", m)
	}
	keys, _ := testclient.GenerateKeys()
	w.phoneGoneIdle(t, bob, "b", "fcm", keys)
	if res := w.publishText(t, bob, 2620009, "wake up"); res["push"] != WakeSent {
		t.Fatalf("publish: %v", res)
	}
	var seen []Event
	for len(seen) == 0 || seen[len(seen)-1].Type != EventPushSent {
		seen = append(seen, first.nextEvent(t))
	}
	wantTypes(t, seen, EventSessionOpened, EventAttached, EventIdle, EventSessionClosed, EventPushSent)
	for i, e := range seen {
		if e.ID != uint64(i+1) || e.Terminal != bob {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	sent := seen[len(seen)-1]
	if sent.Platform != "fcm" || sent.Detail["message_id"] == "" || sent.Detail["latency_ms"] == nil {
		t.Fatalf("push_sent: %+v", sent)
	}
	if seen[1].Detail["host"] != strings.TrimPrefix(w.vendor.URL, "http://") || strings.Contains(fmt.Sprint(seen[1].Detail), "s3cret") {
		t.Fatalf("attached detail: %v", seen[1].Detail)
	}
	first.close()

	// Missed while disconnected: bob is woken, reconnects and acknowledges.
	b := w.dial(bob, "b", func(c *testclient.Config) { c.AutoAck = true })
	if _, _, err := b.RecvText(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitOutboxEmpty(t, w.harness, bob, b)
	if err := b.KeepAliveNow(ctx(t)); err != nil { // the ack's handler (and its event) is done
		t.Fatal(err)
	}
	missed := w.srv.Events(sent.ID, 0, nil, 0)
	wantTypes(t, missed, EventSessionOpened, EventWoken, EventDelivered)

	again := openEvents(t, url, strconv.FormatUint(sent.ID, 10))
	if m, _ := again.next(t); m.event != "hello" {
		t.Fatalf("first message %+v, want hello", m)
	}
	var resumed []Event
	for len(resumed) < len(missed) {
		resumed = append(resumed, again.nextEvent(t))
	}
	for i, e := range resumed {
		if e.ID != sent.ID+uint64(i+1) || e.ID != missed[i].ID || e.Type != missed[i].Type {
			t.Fatalf("resumed %v, want %v (after %d)", eventIDs(resumed), eventIDs(missed), sent.ID)
		}
	}
	// And live events follow on the same stream.
	b.Close()
	if e := again.nextEvent(t); e.Type != EventSessionClosed || e.ID != resumed[len(resumed)-1].ID+1 || e.Reason != CloseNormal.Reason {
		t.Fatalf("live event after resume: %+v", e)
	}
}

func wantTypes(t testing.TB, evs []Event, types ...string) {
	t.Helper()
	var got []string
	for _, e := range evs {
		got = append(got, e.Type)
	}
	i := 0
	for _, g := range got {
		if i < len(types) && g == types[i] {
			i++
		}
	}
	if i != len(types) {
		t.Fatalf("event types %v, want %v in this order", got, types)
	}
}

// TestEventStreamGap: resuming from an evicted id (or one from before a restart) gets a gap
// message first, then whatever the ring still holds.
func TestEventStreamGap(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.EventBuffer = 8 })
	url := eventsServer(t, h.srv)
	for i := 0; i < 20; i++ {
		h.srv.emit(Event{Type: EventIdle, Terminal: uint32(i + 1)})
	}
	evs, meta := eventsOf(t, openEvents(t, url+"?follow=false", "3").rest(t))
	if len(meta) != 2 || meta[0] != "hello" || meta[1] != "gap" {
		t.Fatalf("meta messages %v, want hello, gap", meta)
	}
	if got := eventIDs(evs); len(got) != 8 || got[0] != 13 || got[7] != 20 {
		t.Fatalf("after an evicted id: %v, want 13..20", got)
	}
	evs, meta = eventsOf(t, openEvents(t, url+"?follow=false", "12").rest(t))
	if len(meta) != 1 || len(evs) != 8 {
		t.Fatalf("after the newest evicted id: meta %v, events %v; want no gap, 13..20", meta, eventIDs(evs))
	}
	evs, meta = eventsOf(t, openEvents(t, url+"?follow=false", "1000").rest(t))
	if len(meta) != 2 || meta[1] != "gap" || len(evs) != 8 {
		t.Fatalf("after an id from another stream: meta %v, events %v", meta, eventIDs(evs))
	}

	// Age: after the retention the ring is empty and everything is a gap.
	h.clock.Advance(DefaultEventRetention + time.Second)
	if got := h.srv.Events(0, 0, nil, 0); len(got) != 0 {
		t.Fatalf("after the retention: %v", eventIDs(got))
	}
	evs, meta = eventsOf(t, openEvents(t, url+"?follow=false&after=19", "").rest(t))
	if len(meta) != 2 || meta[1] != "gap" || len(evs) != 0 {
		t.Fatalf("after expiry by age: meta %v, events %v", meta, eventIDs(evs))
	}
	h.srv.emit(Event{Type: EventActive, Terminal: 1})
	if got := h.srv.Events(0, 0, nil, 0); len(got) != 1 || got[0].ID != 21 {
		t.Fatalf("ids go on after eviction: %v", eventIDs(got))
	}
}

func TestEventStreamFilters(t *testing.T) {
	h := newHarness(t)
	url := eventsServer(t, h.srv)
	for i := 0; i < 30; i++ {
		typ := []string{EventIdle, EventActive, EventDelivered}[i%3]
		h.srv.emit(Event{Type: typ, Terminal: uint32(i%2 + 1)})
	}
	evs, _ := eventsOf(t, openEvents(t, url+"?follow=false&terminal=2&types=idle,delivered", "").rest(t))
	if len(evs) != 10 {
		t.Fatalf("%d events, want 10", len(evs))
	}
	for _, e := range evs {
		if e.Terminal != 2 || e.Type == EventActive {
			t.Fatalf("filtered stream has %+v", e)
		}
	}
	if got := h.srv.Events(0, 2, []string{EventIdle, EventDelivered}, 0); len(got) != 10 {
		t.Fatalf("Events with filters: %d", len(got))
	}
	if got := h.srv.Events(10, 0, nil, 5); len(got) != 5 || got[0].ID != 11 {
		t.Fatalf("Events(after 10, limit 5): %v", eventIDs(got))
	}
	evs, _ = eventsOf(t, openEvents(t, url+"?follow=false&limit=4&after=20", "").rest(t))
	if got := eventIDs(evs); len(got) != 4 || got[0] != 21 {
		t.Fatalf("limit: %v", got)
	}

	// A following filtered stream: only live matching events.
	live := openEvents(t, url+"?terminal=7&types=woken", "")
	if m, _ := live.next(t); m.event != "hello" {
		t.Fatalf("%+v", m)
	}
	h.srv.emit(Event{Type: EventIdle, Terminal: 7})
	h.srv.emit(Event{Type: EventWoken, Terminal: 8})
	h.srv.emit(Event{Type: EventWoken, Terminal: 7})
	if e := live.nextEvent(t); e.Type != EventWoken || e.Terminal != 7 || e.ID != 33 {
		t.Fatalf("live filtered: %+v", e)
	}

	for _, q := range []string{"?types=nope", "?terminal=x", "?after=-1", "?follow=maybe", "?limit=3"} {
		resp, err := http.Get(url + q)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400", q, resp.StatusCode)
		}
	}
	resp, err := http.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

// TestEventSlowSubscriber: a subscriber that never reads does not slow emit; it is dropped,
// counted, told why, and can resume from the ring.
func TestEventSlowSubscriber(t *testing.T) {
	const buffer = 16
	h := newHarness(t, func(c *Config) { c.EventSubscriberBuffer = buffer })
	slow, _ := h.srv.events.subscribe(eventFilter{})
	other, _ := h.srv.events.subscribe(eventFilter{terminal: 99})
	for i := 0; i < 10*buffer; i++ { // returns without anybody reading
		h.srv.emit(Event{Type: EventIdle, Terminal: 1})
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("slow subscriber still subscribed")
	}
	if !strings.Contains(slow.why, "Last-Event-ID") {
		t.Errorf("why: %q", slow.why)
	}
	select {
	case <-other.gone:
		t.Fatal("a subscriber with nothing to read was dropped")
	default:
	}
	h.srv.events.unsubscribe(slow)
	h.srv.events.unsubscribe(other)
	if !strings.Contains(scrapeEventMetrics(t, h), "rewind_events_dropped_subscribers_total 1") {
		t.Error("dropped subscriber not counted")
	}
	if got := h.srv.Events(buffer, 0, nil, 0); len(got) != 9*buffer || got[0].ID != buffer+1 {
		t.Fatalf("resume after the last delivered event: %d events", len(got))
	}

	// Over SSE, with a client whose connection takes nothing: the handler is dropped as soon as
	// its channel is full, and ends the stream with the reason as a comment.
	bw := &blockingWriter{header: http.Header{}, entered: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.srv.EventsHandler().ServeHTTP(bw, httptest.NewRequest("GET", "/events", nil))
	}()
	<-bw.entered // subscribed, and stuck in its first write
	for i := 0; i < 10*buffer; i++ {
		h.srv.emit(Event{Type: EventIdle, Terminal: 1})
	}
	if !strings.Contains(scrapeEventMetrics(t, h), "rewind_events_dropped_subscribers_total 2") {
		t.Error("dropped SSE subscriber not counted")
	}
	close(bw.release)
	<-done
	body := bw.String()
	if !strings.HasSuffix(body, "reconnect with Last-Event-ID to resume\n\n") || strings.Count(body, "id: ") > buffer {
		t.Fatalf("stream of a dropped subscriber:\n%s", body)
	}
}

// blockingWriter is a ResponseWriter whose writes wait until release is closed.
type blockingWriter struct {
	header  http.Header
	entered chan struct{} // closed at the first write
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	body    strings.Builder
}

func (b *blockingWriter) Header() http.Header { return b.header }
func (b *blockingWriter) WriteHeader(int)     {}
func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.body.Write(p)
}
func (b *blockingWriter) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.body.String()
}

func scrapeEventMetrics(t testing.TB, h *harness) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.srv.Metrics().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// TestEventStreamEndsOnShutdown: a following stream gets the events of the drain, then ends.
func TestEventStreamEndsOnShutdown(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	url := eventsServer(t, h.srv)
	s := openEvents(t, url, "")
	if m, _ := s.next(t); m.event != "hello" {
		t.Fatalf("%+v", m)
	}
	h.dial(alice, "a")
	if e := s.nextEvent(t); e.Type != EventSessionOpened {
		t.Fatalf("%+v", e)
	}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.srv.Shutdown(c)
	msgs := s.rest(t)
	evs, _ := eventsOf(t, msgs)
	if len(evs) != 1 || evs[0].Type != EventSessionClosed || evs[0].Reason != CloseDrain.Reason {
		t.Fatalf("events during shutdown: %+v", evs)
	}
	if last := msgs[len(msgs)-1]; !strings.Contains(last.comment, "shutting down") {
		t.Fatalf("last message %+v", last)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after shutdown: %d", resp.StatusCode)
	}
}
