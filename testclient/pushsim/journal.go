package pushsim

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Platform names a push provider. The values are the platform strings of TERMINAL_ATTACH
// (PROTOCOL.md §4).
type Platform string

// The two simulated providers.
const (
	PlatformFCM  Platform = "fcm"
	PlatformAPNs Platform = "apns"
)

// ErrClosed is returned by Next once the simulator it waits on has been closed.
var ErrClosed = errors.New("pushsim: closed")

// Push is one push a provider accepted (answered 200). Its maps and slices are shared with the
// journal: treat them as read-only.
type Push struct {
	Platform    Platform
	DeviceToken string
	Project     string // FCM: the project in the request path; empty for APNs
	Topic       string // APNs: the apns-topic header; empty for FCM
	Bearer      string // the bearer token the request authenticated with
	ID          string // FCM: the message name answered ("projects/p/messages/…"); APNs: apns-id
	Headers     http.Header
	Body        []byte // the request body as received

	// Data is FCM's message.data, or for APNs the top-level "rewind" dictionary of the payload
	// (PROTOCOL.md §7); an APNs value that is not a JSON string is kept as its JSON text.
	Data map[string]string
	// APS is the APNs payload's "aps" dictionary (alert, content-available, mutable-content…);
	// nil for FCM.
	APS map[string]any

	// Priority is FCM's android.priority, lower-cased ("high", "normal", or "" when absent), or
	// APNs' apns-priority header ("10", "5", "1", or "" when absent).
	Priority string
	// PushType is the apns-push-type header ("alert" when absent, as APNs assumes); empty for FCM.
	PushType string
	// TTL is FCM's android.ttl; 0 when absent (FCM then keeps the message 4 weeks) or "0s" — look
	// at Body to tell them apart.
	TTL time.Duration
	// Expiration is APNs' apns-expiration; the zero Time when absent or 0 ("try once, do not
	// store").
	Expiration time.Time
	// CollapseKey is FCM's android.collapse_key or APNs' apns-collapse-id.
	CollapseKey string

	Received time.Time
}

// journal records the pushes of one or two providers and feeds Next and the push handlers.
type journal struct {
	mu       sync.Mutex
	pushes   []Push
	next     int                       // index of the next push Next returns
	arrived  chan struct{}             // closed and replaced whenever a push is recorded
	handlers map[string]*deviceHandler // by device token
	closed   bool
	discard  bool // KeepPushes(false): pushes go to handlers only

	done     chan struct{} // closed by close
	handling sync.WaitGroup
}

// deviceHandler delivers one device's pushes to its handler, one at a time, in order.
type deviceHandler struct {
	fn      func(Push)
	queue   []Push
	running bool // a goroutine is draining queue
}

func newJournal() *journal {
	return &journal{
		arrived:  make(chan struct{}),
		handlers: make(map[string]*deviceHandler),
		done:     make(chan struct{}),
	}
}

func (j *journal) record(p Push) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.discard {
		j.pushes = append(j.pushes, p)
		close(j.arrived)
		j.arrived = make(chan struct{})
	}

	h := j.handlers[p.DeviceToken]
	if h == nil || j.closed {
		return
	}
	h.queue = append(h.queue, p)
	if !h.running {
		h.running = true
		j.handling.Add(1)
		go j.deliver(h)
	}
}

// deliver runs h's handler for every queued push, then returns; record starts it again when
// another push arrives.
func (j *journal) deliver(h *deviceHandler) {
	defer j.handling.Done()
	for {
		j.mu.Lock()
		if len(h.queue) == 0 || h.fn == nil || j.closed {
			h.queue = nil
			h.running = false
			j.mu.Unlock()
			return
		}
		p, fn := h.queue[0], h.fn
		h.queue = h.queue[1:]
		j.mu.Unlock()
		fn(p)
	}
}

func (j *journal) onPush(token string, fn func(Push)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	h := j.handlers[token]
	if fn == nil {
		if h != nil {
			h.fn, h.queue = nil, nil
			delete(j.handlers, token)
		}
		return
	}
	if h == nil {
		h = &deviceHandler{}
		j.handlers[token] = h
	}
	h.fn = fn
}

func (j *journal) keep(keep bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.discard = !keep
}

func (j *journal) all() []Push {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.pushes)
}

func (j *journal) nextPush(ctx context.Context) (Push, error) {
	for {
		j.mu.Lock()
		if j.next < len(j.pushes) {
			p := j.pushes[j.next]
			j.next++
			j.mu.Unlock()
			return p, nil
		}
		arrived := j.arrived
		j.mu.Unlock()
		select {
		case <-arrived:
		case <-j.done:
			return Push{}, ErrClosed
		case <-ctx.Done():
			return Push{}, ctx.Err()
		}
	}
}

// settle waits for the running handler goroutines; each returns once its device's queue is
// empty. No push may be recorded meanwhile (a WaitGroup's Add must not race its Wait at zero).
func (j *journal) settle() { j.handling.Wait() }

// close stops handler delivery, fails waiting Next calls and waits for running handlers.
func (j *journal) close() {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return
	}
	j.closed = true
	close(j.done)
	j.mu.Unlock()
	j.handling.Wait()
}
