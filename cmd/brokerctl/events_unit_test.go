package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReadEvents(t *testing.T) {
	stream := "retry: 2000\r\n" +
		": heartbeat abc\n" +
		"event: hello\ndata: {\"stream\":\"abc\"}\n\n" +
		"id: 7\revent: push_sent\rdata: {\"a\":\r\rid: 8\n" + // CR line endings; no data: nothing dispatched for 8
		"data: 1}\n\n" +
		"data: line one\ndata: line two\n\n" +
		"id: 9\ndata:no space\n\n" +
		": broker shutting down\n" +
		"data: never dispatched (no blank line)"
	var got []sseMessage
	end, readErr, fnErr := readEvents(strings.NewReader(stream), "5", func(m sseMessage) error {
		got = append(got, m)
		return nil
	})
	if readErr != nil || fnErr != nil {
		t.Fatal(readErr, fnErr)
	}
	want := []sseMessage{
		{id: "5", event: "hello", data: []byte(`{"stream":"abc"}`)},
		{id: "7", event: "push_sent", data: []byte(`{"a":`)},
		{id: "8", event: "message", data: []byte("1}")},
		{id: "8", event: "message", data: []byte("line one\nline two")},
		{id: "9", event: "message", data: []byte("no space")},
	}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("messages:\n%q\nwant\n%q", got, want)
	}
	if end.retry != 2*time.Second || end.comment != "broker shutting down" {
		t.Errorf("end: %+v", end)
	}

	_, _, fnErr = readEvents(strings.NewReader("data: x\n\ndata: y\n\n"), "", func(m sseMessage) error { return io.ErrShortWrite })
	if fnErr != io.ErrShortWrite {
		t.Errorf("handler error: %v", fnErr)
	}
}

func TestFormatEvent(t *testing.T) {
	at := time.Date(2026, 11, 24, 20, 53, 7, 0, time.UTC)
	for _, tc := range []struct {
		ev   event
		want string
	}{
		{event{Time: at, Type: "session_closed", Terminal: 262000101, Session: "s1", Reason: "kicked by operator", Detail: json.RawMessage(`{"code":4403,"duration_s":12.5}`)},
			`2026-11-24 20:53:07Z  session_closed      262000101   session=s1 reason="kicked by operator" code=4403 duration_s=12.5`},
		{event{Time: at, Type: "push_sent", Terminal: 7, Platform: "fcm", Detail: json.RawMessage(`{"message_id":"projects/p/messages/1","pending":true}`)},
			`2026-11-24 20:53:07Z  push_sent           7           platform=fcm message_id=projects/p/messages/1 pending=true`},
		{event{Time: at, Type: "delivered"}, `2026-11-24 20:53:07Z  delivered           -`},
		{event{Time: at, Type: "x", Detail: json.RawMessage(`"a=b \u001b[31m"`)}, `2026-11-24 20:53:07Z  x                   -           detail="a=b �[31m"`},
	} {
		if got := formatEvent(tc.ev); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

// lineWriter collects output and signals each complete line.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan string, 100)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line) // keep the partial line
			return len(p), nil
		}
		w.lines <- strings.TrimSuffix(line, "\n")
	}
}

// next returns the next line written, failing the test after a while.
func (w *lineWriter) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-w.lines:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no line written")
		return ""
	}
}

// TestEventsFollowReconnects drives "events --follow" against a scripted SSE server: the first
// stream ends after two events, the second must resume with Last-Event-ID and is followed
// until the context is cancelled.
func TestEventsFollowReconnects(t *testing.T) {
	defer func(lo, hi time.Duration) { eventsRetryMin, eventsRetryMax = lo, hi }(eventsRetryMin, eventsRetryMax)
	eventsRetryMin, eventsRetryMax = time.Millisecond, 10*time.Millisecond
	var mu sync.Mutex
	var requests []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r)
		n := len(requests)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		ev := func(id int, typ string) {
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: {\"id\":%d,\"time\":\"2026-11-24T20:53:07Z\",\"type\":%q,\"terminal\":262000101}\n\n", id, typ, id, typ)
		}
		fmt.Fprint(w, "retry: 1\nevent: hello\ndata: {\"stream\":\"s\",\"oldest\":1,\"next\":3}\n\n")
		switch n {
		case 1:
			ev(1, "session_opened")
			ev(2, "idle")
			fmt.Fprint(w, ": too slow: disconnected\n")
		default:
			fmt.Fprint(w, "event: gap\ndata: {\"after\":2,\"oldest\":4,\"reason\":\"evicted\"}\n\n")
			ev(4, "push_sent")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newLineWriter(), &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- runContext(ctx, []string{"--admin-url", srv.URL, "--admin-key", testKey, "--json", "events", "--follow", "--types", "idle,push_sent", "--terminal", "262000101"}, nil, stdout, stderr)
	}()
	var ids []int
	for range 3 {
		var ev struct{ ID int }
		if err := json.Unmarshal([]byte(stdout.next(t)), &ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	cancel()
	if c := <-code; c != exitOK {
		t.Errorf("exit %d; stderr %s", c, stderr.String())
	}
	if fmt.Sprint(ids) != "[1 2 4]" {
		t.Errorf("events %v", ids)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(requests) != 2 {
		t.Fatalf("%d requests", len(requests))
	}
	for i, r := range requests {
		q := r.URL.Query()
		if q.Get("types") != "idle,push_sent" || q.Get("terminal") != "262000101" || q.Has("follow") || r.Header.Get("Authorization") != "Bearer "+testKey {
			t.Errorf("request %d: %s %v", i, r.URL, r.Header)
		}
	}
	if requests[0].Header.Get("Last-Event-ID") != "" || requests[1].Header.Get("Last-Event-ID") != "2" {
		t.Errorf("Last-Event-ID: %q then %q", requests[0].Header.Get("Last-Event-ID"), requests[1].Header.Get("Last-Event-ID"))
	}
	for _, want := range []string{"event stream ended (too slow: disconnected); reconnecting in 1ms", "events after 2 are no longer held by the broker; some were missed, resuming at 4"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr has no %q:\n%s", want, stderr.String())
		}
	}
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
