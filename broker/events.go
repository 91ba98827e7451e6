package broker

// The event stream: what happened to sessions, push channels, pushes and outboxes, for
// operators (dashboard, brokerctl, scripts).
//
// Every event goes into one in-memory ring owned by eventLog, bounded by count
// (Config.EventBuffer) and by age (Config.EventRetention). Event IDs start at 1 when the process
// starts and increase by exactly one per event, so that a gap in IDs always means events were
// missed. A broker restart starts a new stream: IDs begin again at 1 under a new stream id, which
// the SSE endpoint announces in its first message (event "hello") and in every heartbeat.
//
// emit never blocks: it appends to the ring and offers the event to each live subscriber's own
// bounded channel. A subscriber whose channel is full is disconnected (and counted in
// rewind_events_dropped_subscribers_total); it reconnects with Last-Event-ID and resumes from
// the ring, so a slow dashboard costs itself a reconnect and nobody else anything.
//
// SSE protocol flow (GET, EventsHandler):
//
//	event: hello     data: {"stream":"<process stream id>","oldest":<id>,"next":<id>}   (no id)
//	event: gap       data: {"after":<asked>,"oldest":<id>,"reason":"evicted"|"unknown_id"} (no id)
//	id: <n>          event: <type>   data: <Event as JSON>     replayed backlog, then live events
//	: heartbeat <stream>                                         every 15 s while idle
//	: <why>                                                      last line when the broker ends it
//
// "gap" comes first when the events after the asked id are no longer in the ring (evicted), or
// when the asked id is newer than anything this process emitted (a Last-Event-ID from before a
// restart): the client then gets whatever the ring still holds, from its oldest event.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/registry"
)

// Event types.
const (
	// EventSessionOpened: a terminal authenticated. Detail: remote, user, client.
	EventSessionOpened = "session_opened"
	// EventSessionClosed: an authenticated session ended; Reason is the close reason
	// (Disconnect.Reason). Detail: code, duration_s.
	EventSessionClosed = "session_closed"
	// EventAttached: TERMINAL_ATTACH stored. Platform; Detail: host (the token service's host
	// only), token (redacted), keys, legacy, name.
	EventAttached = "attached"
	// EventDetached: TERMINAL_DETACH removed the push channel.
	EventDetached = "detached"
	// EventPushTokenUpdated: a signed background push-token update replaced the device token.
	EventPushTokenUpdated = "push_token_updated"
	// EventIdle: the session sent TERMINAL_IDLE.
	EventIdle = "idle"
	// EventActive: an idle session sent KEEP_ALIVE and is active again.
	EventActive = "active"
	// EventWoken: a terminal authenticated (or became active) within Config.WokenWindow of a push
	// sent to it. Platform; Detail: since_push_s.
	EventWoken = "woken"
	// EventPushSent: the provider accepted a push. Platform; Detail: message_id, latency_ms,
	// kind, pending.
	EventPushSent = "push_sent"
	// EventPushFailed: a wake ended without a push. Platform (when known), Reason (the error);
	// Detail: outcome (a Wake* value), retry_in_s when it will be retried.
	EventPushFailed = "push_failed"
	// EventTokenInvalidated: the provider said the device token is gone; the attach was marked
	// invalid. Platform, Reason; Detail: token (redacted).
	EventTokenInvalidated = "token_invalidated"
	// EventOutboxExpired: a stored datagram reached its TTL unacknowledged. Detail: seq, stored.
	EventOutboxExpired = "outbox_expired"
	// EventDelivered: DELIVERY_ACK deleted stored datagrams. Detail: acked_up_to, count.
	EventDelivered = "delivered"
)

// EventTypes lists every event type, for validating filters.
var EventTypes = []string{
	EventSessionOpened, EventSessionClosed, EventAttached, EventDetached, EventPushTokenUpdated,
	EventIdle, EventActive, EventWoken, EventPushSent, EventPushFailed, EventTokenInvalidated,
	EventOutboxExpired, EventDelivered,
}

// Event is one thing that happened, as the event stream reports it. Detail is read-only once
// emitted: the ring and every subscriber share it.
type Event struct {
	ID       uint64         `json:"id"`
	Time     time.Time      `json:"time"`
	Type     string         `json:"type"`
	Terminal uint32         `json:"terminal,omitempty"`
	Session  string         `json:"session,omitempty"`
	Platform string         `json:"platform,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Detail   map[string]any `json:"detail,omitempty"`
}

// Event stream defaults, each with its reason.
const (
	// DefaultEventBuffer bounds the ring: an hour of a busy node's sessions and pushes at about
	// 200 bytes an event is ~20 MB at most.
	DefaultEventBuffer = 100_000
	// DefaultEventRetention: the stream is for watching and for reconnecting after a blip, not
	// for history (the push audit trail is the durable record).
	DefaultEventRetention = time.Hour
	// DefaultEventSubscriberBuffer is how many events may wait for one SSE subscriber. A
	// subscriber that falls this far behind is disconnected and resumes from the ring.
	DefaultEventSubscriberBuffer = 1024
	// DefaultEventHeartbeat keeps proxies from closing an idle stream and lets clients notice a
	// dead one; 15 s is below common proxy idle timeouts (30-60 s).
	DefaultEventHeartbeat = 15 * time.Second
	// DefaultWokenWindow: a terminal that authenticates this soon after a push was woken by it.
	DefaultWokenWindow = 5 * time.Minute

	// eventPage bounds the events scanned under the ring's lock at a time while replaying.
	eventPage = 512
	// eventWriteTimeout bounds one write to an SSE client.
	eventWriteTimeout = 10 * time.Second
	// eventRetryMillis is the reconnect delay suggested to SSE clients.
	eventRetryMillis = 2000
)

// eventLog is the ring of recent events and the set of live subscribers.
type eventLog struct {
	// Static after construction.
	stream    string // per-process stream id
	max       int
	retention time.Duration
	subBuffer int
	clock     Clock
	metrics   *metrics
	done      chan struct{} // closed by close

	// Guarded by mu. The ring holds count events from head; their ids are next-count .. next-1.
	mu     sync.Mutex
	ring   []Event // grows by doubling up to max
	head   int
	count  int
	next   uint64 // id of the next event; from 1
	subs   map[*eventSub]struct{}
	closed bool
}

// eventSub is one live subscriber.
type eventSub struct {
	filter eventFilter
	ch     chan Event    // never closed
	gone   chan struct{} // closed when the log drops the subscriber
	why    string        // set before gone is closed
}

// eventFilter selects events; the zero value selects every event.
type eventFilter struct {
	terminal uint32
	types    map[string]bool
}

func (f eventFilter) match(e *Event) bool {
	return (f.terminal == 0 || e.Terminal == f.terminal) && (f.types == nil || f.types[e.Type])
}

func newEventLog(cfg Config, m *metrics) *eventLog {
	var b [6]byte
	rand.Read(b[:])
	return &eventLog{
		stream:    hex.EncodeToString(b[:]),
		max:       cfg.EventBuffer,
		retention: cfg.EventRetention,
		subBuffer: cfg.EventSubscriberBuffer,
		clock:     cfg.Clock,
		metrics:   m,
		done:      make(chan struct{}),
		ring:      make([]Event, min(cfg.EventBuffer, 1024)),
		next:      1,
		subs:      make(map[*eventSub]struct{}),
	}
}

// emit records e (its ID and Time are set here) and offers it to the subscribers. It never
// blocks.
func (srv *Server) emit(e Event) { srv.events.emit(e) }

// emitPushTokenUpdated reports that terminal's device token was replaced by a signed update.
func (srv *Server) emitPushTokenUpdated(terminal uint32, platform string) {
	srv.emit(Event{Type: EventPushTokenUpdated, Terminal: terminal, Platform: platform})
}

func (l *eventLog) emit(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	e.ID, e.Time = l.next, now.UTC()
	l.next++
	l.evictLocked(now)
	if l.count == len(l.ring) {
		if len(l.ring) < l.max {
			grown := make([]Event, min(2*len(l.ring), l.max))
			n := copy(grown, l.ring[l.head:])
			copy(grown[n:], l.ring[:l.head])
			l.ring, l.head = grown, 0
		} else {
			l.ring[l.head] = Event{}
			l.head = (l.head + 1) % len(l.ring)
			l.count--
		}
	}
	l.ring[(l.head+l.count)%len(l.ring)] = e
	l.count++
	for sub := range l.subs {
		if !sub.filter.match(&e) {
			continue
		}
		select {
		case sub.ch <- e:
		default:
			l.dropLocked(sub, "too slow: disconnected; reconnect with Last-Event-ID to resume")
			l.metrics.eventSubsDropped.Inc()
		}
	}
}

// evictLocked drops events older than the retention.
func (l *eventLog) evictLocked(now time.Time) {
	cutoff := now.Add(-l.retention)
	for l.count > 0 && l.ring[l.head].Time.Before(cutoff) {
		l.ring[l.head] = Event{}
		l.head = (l.head + 1) % len(l.ring)
		l.count--
	}
}

func (l *eventLog) dropLocked(sub *eventSub, why string) {
	delete(l.subs, sub)
	sub.why = why
	close(sub.gone)
}

// read returns up to limit events matching f with after < ID <= upTo, scanning at most
// eventPage events. scanned is the last ID looked at (pass it as the next after); gap reports
// that events after after were already evicted (the scan then starts at oldest).
func (l *eventLog) read(after, upTo uint64, f eventFilter, limit int) (out []Event, scanned, oldest uint64, gap bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictLocked(l.clock.Now())
	oldest = l.next - uint64(l.count)
	if after+1 < oldest {
		gap, after = true, oldest-1
	}
	upTo = min(upTo, l.next-1)
	scanned = after
	for id := after + 1; id <= upTo && len(out) < limit && id-after <= eventPage; id++ {
		e := &l.ring[(l.head+int(id-oldest))%len(l.ring)]
		if f.match(e) {
			out = append(out, *e)
		}
		scanned = id
	}
	return out, scanned, oldest, gap
}

// bounds returns the oldest ID still held (next when empty) and the next ID to be given.
func (l *eventLog) bounds() (oldest, next uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictLocked(l.clock.Now())
	return l.next - uint64(l.count), l.next
}

// subscribe registers a live subscriber. Every event with ID >= from that matches f is offered
// to it; earlier ones are in the ring. nil when the log is closed.
func (l *eventLog) subscribe(f eventFilter) (sub *eventSub, from uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, l.next
	}
	sub = &eventSub{filter: f, ch: make(chan Event, l.subBuffer), gone: make(chan struct{})}
	l.subs[sub] = struct{}{}
	l.metrics.eventSubscribers.Inc()
	return sub, l.next
}

func (l *eventLog) unsubscribe(sub *eventSub) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.subs, sub)
	l.metrics.eventSubscribers.Dec()
}

// close disconnects every subscriber (they get what was already queued for them first) and
// refuses new ones. Events emitted later are still kept in the ring.
func (l *eventLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	for sub := range l.subs {
		l.dropLocked(sub, "broker shutting down")
	}
	close(l.done)
}

// Events returns up to limit events with ID > after still in the ring, oldest first; terminal
// (0: any) and types (nil: any) filter them. limit <= 0 means no limit.
func (srv *Server) Events(after uint64, terminal uint32, types []string, limit int) []Event {
	f := eventFilter{terminal: terminal}
	if len(types) > 0 {
		f.types = make(map[string]bool, len(types))
		for _, t := range types {
			f.types[t] = true
		}
	}
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	var out []Event
	for len(out) < limit {
		evs, scanned, _, _ := srv.events.read(after, ^uint64(0), f, limit-len(out))
		out = append(out, evs...)
		if scanned == after {
			return out
		}
		after = scanned
	}
	return out
}

// EventStream returns the id of this process's event stream: IDs restart at 1 under a new
// stream id when the broker restarts.
func (srv *Server) EventStream() string { return srv.events.stream }

// EventsHandler serves the event stream as Server-Sent Events (GET; see the protocol flow at the
// top of this file). Query parameters:
//
//	after=ID       replay the events after ID still in the ring, then follow (the Last-Event-ID
//	               header, sent by reconnecting EventSource clients, takes precedence); without
//	               either, a following stream starts with live events and follow=false returns
//	               the whole ring
//	terminal=ID    only this terminal's events
//	types=a,b      only these event types (unknown types: 400)
//	follow=false   send the backlog and end (scripts, brokerctl)
//	limit=N        with follow=false: at most N events
//
// A following stream ends when the client goes away, when it falls DefaultEventSubscriberBuffer
// events behind (it should reconnect with Last-Event-ID), or when the Server shuts down. The
// handler does no authentication: mount it behind the admin key.
func (srv *Server) EventsHandler() http.Handler { return http.HandlerFunc(srv.serveEvents) }

func (srv *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req, err := parseEventsRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	l := srv.events
	var sub *eventSub
	var liveFrom uint64
	if req.follow {
		if sub, liveFrom = l.subscribe(req.filter); sub == nil {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "broker is shutting down", http.StatusServiceUnavailable)
			return
		}
		defer l.unsubscribe(sub)
	} else {
		_, liveFrom = l.bounds()
	}
	after := req.after
	if !req.hasAfter && req.follow {
		after = liveFrom - 1
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	out := &sseWriter{w: w, rc: http.NewResponseController(w)}

	oldest, _ := l.bounds()
	out.retry(eventRetryMillis)
	out.event(0, "hello", map[string]any{"stream": l.stream, "oldest": oldest, "next": liveFrom})
	if req.hasAfter && after >= liveFrom {
		out.event(0, "gap", map[string]any{"after": after, "oldest": oldest, "reason": "unknown_id"})
		after = oldest - 1
	}

	// Replay the backlog up to the first event the subscription carries.
	sent := 0
	for after+1 < liveFrom && out.err == nil && (req.limit == 0 || sent < req.limit) {
		room := eventPage
		if req.limit > 0 {
			room = min(room, req.limit-sent)
		}
		evs, scanned, oldest, gap := l.read(after, liveFrom-1, req.filter, room)
		if gap {
			out.event(0, "gap", map[string]any{"after": after, "oldest": oldest, "reason": "evicted"})
		}
		for i := range evs {
			out.event(evs[i].ID, evs[i].Type, &evs[i])
		}
		sent += len(evs)
		if scanned == after {
			break
		}
		after = scanned
		out.flush()
	}
	out.flush()
	if !req.follow || out.err != nil {
		return
	}

	heartbeat := time.NewTicker(srv.cfg.EventHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.gone:
			if l.isClosed() {
				// Shutting down: hand over what was already queued for this subscriber.
				for len(sub.ch) > 0 && out.err == nil {
					e := <-sub.ch
					out.event(e.ID, e.Type, &e)
				}
			}
			out.comment(sub.why)
			out.flush()
			return
		case e := <-sub.ch:
			out.event(e.ID, e.Type, &e)
			for n := 0; n < eventPage && len(sub.ch) > 0 && out.err == nil; n++ {
				e := <-sub.ch
				out.event(e.ID, e.Type, &e)
			}
			out.flush()
		case <-heartbeat.C:
			out.comment("heartbeat " + l.stream)
			out.flush()
		}
		if out.err != nil {
			return
		}
	}
}

func (l *eventLog) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

type eventsRequest struct {
	after    uint64
	hasAfter bool
	filter   eventFilter
	follow   bool
	limit    int
}

func parseEventsRequest(r *http.Request) (eventsRequest, error) {
	q := r.URL.Query()
	req := eventsRequest{follow: true}
	after := q.Get("after")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		after = id
	}
	if after != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(after), 10, 64)
		if err != nil {
			return req, fmt.Errorf("bad event id %q", after)
		}
		req.after, req.hasAfter = n, true
	}
	if s := q.Get("terminal"); s != "" {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 0 {
			return req, fmt.Errorf("bad terminal id %q", s)
		}
		req.filter.terminal = uint32(n)
	}
	if s := q.Get("types"); s != "" {
		req.filter.types = make(map[string]bool)
		for _, t := range strings.Split(s, ",") {
			t = strings.TrimSpace(t)
			if !isEventType(t) {
				return req, fmt.Errorf("unknown event type %q (known: %s)", t, strings.Join(EventTypes, ", "))
			}
			req.filter.types[t] = true
		}
	}
	if s := q.Get("follow"); s != "" {
		f, err := strconv.ParseBool(s)
		if err != nil {
			return req, fmt.Errorf("bad follow %q", s)
		}
		req.follow = f
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return req, fmt.Errorf("bad limit %q", s)
		}
		if req.follow {
			return req, errors.New("limit needs follow=false")
		}
		req.limit = n
	}
	return req, nil
}

func isEventType(t string) bool {
	for _, k := range EventTypes {
		if k == t {
			return true
		}
	}
	return false
}

// sseWriter writes Server-Sent Events; the first error sticks and ends the stream.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
	buf []byte
}

func (o *sseWriter) write(b []byte) {
	if o.err != nil {
		return
	}
	if err := o.rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		o.err = err
		return
	}
	_, o.err = o.w.Write(b)
}

// event writes one message; id 0 writes none (meta events do not move Last-Event-ID).
func (o *sseWriter) event(id uint64, typ string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		data, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	b := o.buf[:0]
	if id != 0 {
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, '\n')
	}
	b = append(b, "event: "...)
	b = append(b, typ...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	o.buf = b
	o.write(b)
}

func (o *sseWriter) comment(text string) { o.write([]byte(": " + text + "\n\n")) }

func (o *sseWriter) retry(ms int) { o.write([]byte("retry: " + strconv.Itoa(ms) + "\n\n")) }

func (o *sseWriter) flush() {
	if o.err == nil {
		if err := o.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			o.err = err
		}
	}
}

// maxPushMarks bounds pushMarks: beyond it, pushes are not tracked for "woken" events and the
// wake-to-delivery histogram (a push storm must not grow memory without limit).
const maxPushMarks = 100_000

// pushMarks remembers when each terminal was last pushed, for EventWoken and
// rewind_wake_to_delivery_seconds. Entries older than the woken window are pruned at every
// outbox expiry sweep.
type pushMarks struct {
	mu sync.Mutex
	m  map[uint32]pushMark
}

type pushMark struct {
	at       time.Time
	platform string
	woken    bool // EventWoken was emitted for this push
}

// notePushSent records that a push to terminal is being sent. It is called before the send:
// on loopback a phone can reconnect and acknowledge before the provider's answer reaches the
// worker. forgetPush undoes it when the provider refuses.
func (srv *Server) notePushSent(terminal uint32, platform Platform) {
	p := &srv.pushMarks
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[uint32]pushMark)
	}
	if _, ok := p.m[terminal]; ok || len(p.m) < maxPushMarks {
		p.m[terminal] = pushMark{at: srv.cfg.Clock.Now(), platform: string(platform)}
	}
}

// forgetPush drops the mark notePushSent set for a push the provider did not accept.
func (srv *Server) forgetPush(terminal uint32) {
	p := &srv.pushMarks
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, terminal)
}

// noteWoken emits EventWoken when s's terminal was pushed within the woken window and has not
// been reported woken for that push yet.
func (srv *Server) noteWoken(s *session) {
	now := srv.cfg.Clock.Now()
	p := &srv.pushMarks
	p.mu.Lock()
	mark, ok := p.m[s.terminal]
	ok = ok && !mark.woken && now.Sub(mark.at) <= srv.cfg.WokenWindow
	if ok {
		mark.woken = true
		p.m[s.terminal] = mark
	}
	p.mu.Unlock()
	if ok {
		srv.emit(Event{Type: EventWoken, Terminal: s.terminal, Session: s.id, Platform: mark.platform,
			Detail: map[string]any{"since_push_s": now.Sub(mark.at).Seconds()}})
	}
}

// noteDelivered observes the wake-to-delivery time at the first DELIVERY_ACK after a push.
func (srv *Server) noteDelivered(terminal uint32) {
	now := srv.cfg.Clock.Now()
	p := &srv.pushMarks
	p.mu.Lock()
	mark, ok := p.m[terminal]
	if ok {
		delete(p.m, terminal)
	}
	p.mu.Unlock()
	if ok && now.Sub(mark.at) <= srv.cfg.WokenWindow {
		srv.metrics.wakeToDelivery.Observe(now.Sub(mark.at).Seconds())
	}
}

// prunePushMarks forgets pushes older than the woken window.
func (srv *Server) prunePushMarks(now time.Time) {
	p := &srv.pushMarks
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, mark := range p.m {
		if now.Sub(mark.at) > srv.cfg.WokenWindow {
			delete(p.m, t)
		}
	}
}

// attachDetail describes an attach for EventAttached without its secrets: the token service's
// host only (its path and query may hold a vendor secret) and a redacted device token.
func attachDetail(a protocol.Attach) map[string]any {
	host := ""
	if u, err := url.Parse(a.URL); err == nil {
		host = u.Host
	}
	return map[string]any{"host": host, "token": registry.RedactToken(a.Token), "keys": a.P256DH != nil,
		"legacy": a.Legacy, "name": a.Name}
}

// wakeRecord is what one wake found out, filled in by waker.wake as it goes.
type wakeRecord struct {
	terminal  uint32
	platform  Platform
	reason    string // why it failed
	messageID string
	kind      string
	note      string // why the push carries less than the datagram, when it does
	pending   int
	latency   time.Duration // wake start to the provider's answer
}

// report publishes the outcome of one wake.
func (w *waker) report(rec *wakeRecord, outcome string, retryIn time.Duration) {
	srv := w.srv
	srv.appendAudit(rec, outcome)
	switch outcome {
	case WakeNothing:
		return // nothing was owed: no push was due
	case WakeSent:
		detail := map[string]any{"message_id": rec.messageID, "latency_ms": rec.latency.Milliseconds(), "kind": rec.kind, "pending": rec.pending}
		if rec.note != "" {
			detail["note"] = rec.note
		}
		srv.emit(Event{Type: EventPushSent, Terminal: rec.terminal, Platform: string(rec.platform), Detail: detail})
	default:
		detail := map[string]any{"outcome": outcome}
		if outcome == WakeRetrying && retryIn > 0 {
			detail["retry_in_s"] = retryIn.Seconds()
		}
		srv.emit(Event{Type: EventPushFailed, Terminal: rec.terminal, Platform: string(rec.platform), Reason: rec.reason, Detail: detail})
	}
}
