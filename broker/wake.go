package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/tokensvc"
)

// Push defaults, each with its reason.
const (
	// DefaultOutboxTTL: a text older than a day is stale news; the operator can raise it.
	DefaultOutboxTTL = 24 * time.Hour
	// DefaultWakeQuiet: after a push, further datagrams for the same terminal do not push again
	// for this long unless it reconnects (coalescing; providers throttle repeated wakes).
	DefaultWakeQuiet = 30 * time.Second
	// DefaultWakeWorkers sends pushes concurrently; sends are I/O bound on HTTP/2 streams.
	DefaultWakeWorkers = 32
	// MaxWakeWorkers bounds PushConfig.WakeWorkers (each is a goroutine and, while sending, an
	// HTTP/2 stream).
	MaxWakeWorkers = 4096
	// DefaultWakeQueue bounds terminals waiting for a push worker.
	DefaultWakeQueue = 10_000
	// DefaultWakeAttempts bounds retries of one wake after throttling or provider errors.
	DefaultWakeAttempts = 5
	// DefaultWakeTimeout bounds one wake: token lookup plus provider send(s).
	DefaultWakeTimeout = 15 * time.Second
	// DefaultDeliveryWindow is how many stored datagrams may be unacknowledged on a session.
	DefaultDeliveryWindow = 128
	// DefaultExpireInterval is how often expired outbox entries are removed and counted.
	DefaultExpireInterval = time.Minute
	// DefaultPublishWait bounds how long the publish API waits for the push outcome.
	DefaultPublishWait = 10 * time.Second
)

// TokenSource gives the credentials for a token-service URL; *tokensvc.Client implements it.
type TokenSource interface {
	Get(ctx context.Context, url string) (tokensvc.Credential, error)
	Invalidate(url, token string)
}

// Store is what the push fallback keeps durably; *registry.Badger implements it.
type Store interface {
	registry.Outbox
	registry.Attaches
}

// PushConfig enables store-and-forward and wake-ups. The zero value of each optional field
// means its default.
type PushConfig struct {
	Store   Store
	Tokens  TokenSource
	Senders map[Platform]Sender
	// Policy decides which token-service URLs a terminal may attach.
	Policy tokensvc.URLPolicy
	// OutboxTTL: zero means DefaultOutboxTTL.
	OutboxTTL time.Duration
	// PlainLegacy lets legacy attaches (no keys) receive the datagram unencrypted in the push.
	// Off by default: such terminals get a wake-only push.
	PlainLegacy bool
	// WakeQuiet, WakeWorkers, WakeQueue, WakeAttempts, DeliveryWindow, ExpireInterval:
	// zero means their defaults.
	WakeQuiet      time.Duration
	WakeWorkers    int
	WakeQueue      int
	WakeAttempts   int
	DeliveryWindow int
	ExpireInterval time.Duration
}

func (c PushConfig) withDefaults() (PushConfig, error) {
	if c.Store == nil || c.Tokens == nil {
		return c, errors.New("broker: push needs a store and a token source")
	}
	orDefault(&c.OutboxTTL, DefaultOutboxTTL)
	orDefault(&c.WakeQuiet, DefaultWakeQuiet)
	orDefault(&c.WakeWorkers, DefaultWakeWorkers)
	orDefault(&c.WakeQueue, DefaultWakeQueue)
	orDefault(&c.WakeAttempts, DefaultWakeAttempts)
	orDefault(&c.DeliveryWindow, DefaultDeliveryWindow)
	orDefault(&c.ExpireInterval, DefaultExpireInterval)
	if c.OutboxTTL < time.Second || c.WakeWorkers < 1 || c.WakeWorkers > MaxWakeWorkers || c.WakeQueue < 1 || c.DeliveryWindow < 1 {
		return c, errors.New("broker: push config out of range")
	}
	return c, nil
}

// Wake outcomes, as the publish API reports them and metrics count them.
const (
	WakeSent           = "sent"
	WakeAlreadyPending = "already_pending"
	WakeNoChannel      = "no_push_channel"
	WakeTokenInvalid   = "token_invalid"
	WakeNotNeeded      = "not_needed" // the terminal is active: delivered over its socket
	WakeRetrying       = "retrying"   // provider or token service unavailable; retried with backoff
	WakeRejected       = "rejected"   // the provider refused the message; not retried
	WakeNothing        = "nothing_pending"
	WakeOverloaded     = "overloaded"
	WakeQueued         = "queued" // outcome not awaited
)

// waker sends at most one push per terminal at a time: a terminal that was pushed is not pushed
// again until it reconnects or WakeQuiet passes. Workers take terminals from a bounded queue.
type waker struct {
	srv   *Server
	cfg   PushConfig
	queue chan uint32
	stop  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	terms map[uint32]*wakeState
}

type wakeState struct {
	queued bool
	// reconnected is set when the terminal reconnects while its push is being sent: the
	// push did its job, so no quiet period follows it.
	reconnected bool
	quietUntil  time.Time
	attempts    int
	retry       Timer
	waiters     []chan string
}

func newWaker(srv *Server, cfg PushConfig) *waker {
	w := &waker{srv: srv, cfg: cfg, queue: make(chan uint32, cfg.WakeQueue), stop: make(chan struct{}), terms: make(map[uint32]*wakeState)}
	for i := 0; i < cfg.WakeWorkers; i++ {
		w.wg.Add(1)
		go w.work()
	}
	return w
}

func (w *waker) close() {
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, st := range w.terms {
		if st.retry != nil {
			st.retry.Stop()
		}
	}
}

// request asks for terminal t to be woken. With wait it returns the outcome of the push (or
// WakeQueued if that takes longer than DefaultPublishWait).
func (w *waker) request(t uint32, wait bool) string {
	w.mu.Lock()
	st := w.terms[t]
	if st == nil {
		st = &wakeState{}
		w.terms[t] = st
	}
	if st.queued || st.retry != nil || w.srv.cfg.Clock.Now().Before(st.quietUntil) {
		w.mu.Unlock()
		return WakeAlreadyPending
	}
	var ch chan string
	if wait {
		ch = make(chan string, 1)
		st.waiters = append(st.waiters, ch)
	}
	if !w.enqueueLocked(t, st) {
		w.mu.Unlock()
		return WakeOverloaded
	}
	w.mu.Unlock()
	if !wait {
		return WakeQueued
	}
	timer := time.NewTimer(DefaultPublishWait)
	defer timer.Stop()
	select {
	case o := <-ch:
		return o
	case <-timer.C:
		return WakeQueued
	}
}

func (w *waker) enqueueLocked(t uint32, st *wakeState) bool {
	select {
	case w.queue <- t:
		st.queued = true
		return true
	default:
		w.srv.metrics.pushes.WithLabelValues("none", WakeOverloaded).Inc()
		w.srv.emit(Event{Type: EventPushFailed, Terminal: t, Reason: "wake queue full", Detail: map[string]any{"outcome": WakeOverloaded}})
		w.finishLocked(st, WakeOverloaded)
		return false
	}
}

// reconnected forgets t's wake state: it has a session again.
func (w *waker) reconnected(t uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.terms[t]; st != nil {
		if st.retry != nil {
			st.retry.Stop()
		}
		if !st.queued {
			delete(w.terms, t)
		} else {
			st.quietUntil, st.attempts, st.retry, st.reconnected = time.Time{}, 0, nil, true
		}
	}
}

func (w *waker) finishLocked(st *wakeState, outcome string) {
	for _, ch := range st.waiters {
		ch <- outcome
	}
	st.waiters = nil
}

func (w *waker) work() {
	defer w.wg.Done()
	for {
		select {
		case <-w.stop:
			return
		case t := <-w.queue:
			outcome, retryIn := w.wake(t)
			w.done(t, outcome, retryIn)
		}
	}
}

// done records a wake's outcome and schedules a retry when one is due.
func (w *waker) done(t uint32, outcome string, retryIn time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.terms[t]
	if st == nil {
		return
	}
	st.queued = false
	w.finishLocked(st, outcome)
	switch {
	case st.reconnected:
		delete(w.terms, t)
	case outcome == WakeSent:
		st.quietUntil = w.srv.cfg.Clock.Now().Add(w.cfg.WakeQuiet)
		st.attempts = 0
	case outcome == WakeRetrying && st.attempts+1 < w.cfg.WakeAttempts:
		st.attempts++
		st.retry = w.srv.cfg.Clock.AfterFunc(retryIn, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if cur := w.terms[t]; cur == st && st.retry != nil {
				st.retry = nil
				w.enqueueLocked(t, st)
			}
		})
	default:
		delete(w.terms, t)
	}
}

// backoff returns the retry delay after attempt n (0-based): 1 s doubling to 5 min.
func backoff(n int) time.Duration {
	d := time.Second << min(n, 8)
	return min(d, 5*time.Minute)
}

// wake sends one push for terminal t and returns its outcome, and when to retry. Every outcome
// is reported (event stream, push audit) before it returns.
func (w *waker) wake(t uint32) (outcome string, retryIn time.Duration) {
	srv := w.srv
	rec := wakeRecord{terminal: t}
	defer func() { w.report(&rec, outcome, retryIn) }()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultWakeTimeout)
	defer cancel()
	log := srv.log.With("terminal", t)
	st := w.cfg.Store

	a, err := st.GetAttach(ctx, t)
	if errors.Is(err, registry.ErrNotFound) {
		rec.reason = "no push channel attached"
		return w.count("none", WakeNoChannel), 0
	} else if err != nil {
		log.Error("wake: attach lookup failed", "err", err)
		rec.reason = "attach lookup failed: " + err.Error()
		return w.count("none", WakeRetrying), backoff(0)
	}
	platform := Platform(a.Platform)
	rec.platform = platform
	if a.Invalid {
		rec.reason = "attach marked invalid: " + a.InvalidReason
		return w.count(platform, WakeTokenInvalid), 0
	}
	pending, err := st.Pending(ctx, t, 0, 1)
	if err != nil {
		log.Error("wake: outbox read failed", "err", err)
		rec.reason = "outbox read failed: " + err.Error()
		return w.count(platform, WakeRetrying), backoff(0)
	}
	if len(pending) == 0 {
		return w.count(platform, WakeNothing), 0
	}
	if srv.hub.active(t) {
		// Requested while the terminal was away (an old session's cleanup, an idle with
		// unacknowledged deliveries) and it is back: its pump delivers; a push now would only
		// ring the phone and start a quiet period that would hold back the next real wake.
		rec.reason = "terminal active again"
		return w.count(platform, WakeNotNeeded), 0
	}
	count, _, _ := st.Depth(ctx, t)
	sender := w.cfg.Senders[platform]
	if sender == nil {
		log.Warn("wake: no sender for platform", "platform", a.Platform)
		rec.reason = "no sender for platform " + a.Platform
		return w.count(platform, WakeRejected), 0
	}

	var res PushResult
	start := time.Now()
	for try := 0; try < 2; try++ {
		cred, err := w.cfg.Tokens.Get(ctx, a.URL)
		if err != nil {
			var be *tokensvc.BackoffError
			retry := backoff(w.attempts(t))
			if errors.As(err, &be) {
				retry = max(be.Until.Sub(srv.cfg.Clock.Now()), time.Second)
			}
			log.Warn("wake: no credential from the token service", "url", tokensvc.Redact(a.URL), "err", err, "retry_in", retry)
			rec.reason = "token service: " + err.Error()
			srv.metrics.tokenFetches.WithLabelValues("error").Inc()
			return w.count(platform, WakeRetrying), retry
		}
		req, err := w.buildPush(a, pending[0], count, cred)
		if err != nil {
			log.Warn("wake: push not built", "err", err)
			rec.reason = "push not built: " + err.Error()
			return w.count(platform, WakeRejected), 0
		}
		srv.notePushSent(t, platform)
		res, err = sender.Send(ctx, req)
		if err != nil {
			srv.forgetPush(t)
		}
		rec.kind, rec.latency, rec.note = req.Kind, time.Since(start), w.pushNote(a, req)
		if err != nil {
			rec.reason = err.Error()
		}
		if errors.Is(err, ErrProviderAuth) && try == 0 {
			log.Info("wake: provider refused the credential; refetching once", "url", tokensvc.Redact(a.URL))
			w.cfg.Tokens.Invalidate(a.URL, cred.Token)
			srv.metrics.tokenInvalidations.Inc()
			continue
		}
		srv.metrics.pushLatency.WithLabelValues(string(platform)).Observe(time.Since(start).Seconds())
		var pe *PushError
		errors.As(err, &pe)
		switch {
		case err == nil:
			log.Info("wake: push sent", "platform", a.Platform, "message", res.MessageID, "pending", count, "kind", req.Kind)
			rec.messageID, rec.pending = res.MessageID, count
			return w.count(platform, WakeSent), 0
		case errors.Is(err, ErrUnregistered):
			if platform == PlatformAPNs && pe != nil && !pe.Timestamp.IsZero() && pe.Timestamp.Before(a.Attached) {
				log.Info("wake: APNs says unregistered before the current attach; keeping it", "err", err)
				return w.count(platform, WakeRejected), 0
			}
			if _, merr := st.MarkAttachInvalid(ctx, t, a.Token, err.Error(), srv.cfg.Clock.Now()); merr != nil {
				log.Error("wake: could not mark attach invalid", "err", merr)
			}
			log.Warn("wake: device token invalid; attach marked invalid", "platform", a.Platform, "token", registry.RedactToken(a.Token), "err", err)
			srv.emit(Event{Type: EventTokenInvalidated, Terminal: t, Platform: a.Platform, Reason: err.Error(), Detail: map[string]any{"token": registry.RedactToken(a.Token)}})
			return w.count(platform, WakeTokenInvalid), 0
		case errors.Is(err, ErrThrottled), errors.Is(err, ErrUnavailable), errors.Is(err, ErrProviderAuth):
			retry := backoff(w.attempts(t))
			if pe != nil && pe.RetryAfter > 0 {
				retry = pe.RetryAfter
			}
			log.Warn("wake: provider unavailable; will retry", "platform", a.Platform, "err", err, "retry_in", retry)
			return w.count(platform, WakeRetrying), retry
		default:
			log.Warn("wake: provider rejected the push; dropped", "platform", a.Platform, "err", err)
			return w.count(platform, WakeRejected), 0
		}
	}
	return w.count(platform, WakeRetrying), backoff(w.attempts(t))
}

func (w *waker) attempts(t uint32) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.terms[t]; st != nil {
		return st.attempts
	}
	return 0
}

func (w *waker) count(p Platform, outcome string) string {
	label := string(p)
	if label == "" {
		label = "none"
	}
	w.srv.metrics.pushes.WithLabelValues(label, outcome).Inc()
	return outcome
}

// pushNote says why a push carries less than the stored datagram, for the event stream.
func (w *waker) pushNote(a registry.Attach, req PushRequest) string {
	switch {
	case req.Kind == PushKindData:
		return ""
	case a.P256DH != nil:
		return "the sealed datagram exceeds the provider's 4096-byte payload: a sealed TERMINAL_WAKEUP was sent; the datagram follows over the socket"
	case a.Legacy && !w.cfg.PlainLegacy:
		return "legacy attach without keys: the datagram is not sent in clear unless the operator enables --plain-legacy; wake-only push"
	default:
		return "no push keys registered: wake-only push"
	}
}

// collapseID is a terminal's push collapse identifier, "rewind-<id>", in one allocation.
func collapseID(terminal uint32) string {
	var buf [len("rewind-") + 10]byte
	return string(strconv.AppendUint(append(buf[:0], "rewind-"...), uint64(terminal), 10))
}

// buildPush chooses the push body (PROTOCOL.md §7): the oldest stored datagram, sealed for the
// terminal when it registered keys, or TERMINAL_WAKEUP when it does not fit; plain only for
// legacy attaches when the operator allows it; otherwise no body.
func (w *waker) buildPush(a registry.Attach, first registry.Entry, pending int, cred tokensvc.Credential) (PushRequest, error) {
	now := w.srv.cfg.Clock.Now()
	req := PushRequest{
		Platform:    Platform(a.Platform),
		DeviceToken: a.Token,
		Credential:  cred,
		Topic:       a.Topic,
		Kind:        PushKindWake,
		TTL:         max(first.Expires.Sub(now), time.Second).Truncate(time.Second),
		CollapseID:  collapseID(a.Terminal),
	}
	want := string(a.Platform)
	if (want == string(PlatformFCM) && cred.Type != tokensvc.TypeFCM) || (want == string(PlatformAPNs) && cred.Type != tokensvc.TypeAPNs) {
		return req, fmt.Errorf("token service returned %q credentials for a %s attach", cred.Type, a.Platform)
	}
	stored, err := protocol.Decode(first.Datagram)
	if err != nil {
		return req, fmt.Errorf("stored datagram: %w", err)
	}
	req.Visible = stored.Type == protocol.TypeMessageText || stored.Type == protocol.TypeLocationRequest
	stored.Flags |= protocol.FlagBuffering
	stored.Number = uint32(first.Seq)
	datagram := stored.MustEncode()
	wakeup := protocol.Datagram{Type: protocol.TypeTerminalWakeup, Flags: protocol.FlagBuffering, Data: protocol.EncodeU32(uint32(pending))}.MustEncode()

	fits := func(r PushRequest) bool {
		n, err := PushPayloadSize(r)
		return err == nil && n <= MaxPushPayload
	}
	switch {
	case a.P256DH != nil:
		keys := protocol.PushKeys{P256DH: a.P256DH, Auth: a.Auth}
		body, err := protocol.Seal(keys, datagram)
		if err != nil {
			return req, err
		}
		try := req
		try.Kind, try.Enc, try.Body = PushKindData, PushEncAES128GCM, body
		if fits(try) {
			return try, nil
		}
		if body, err = protocol.Seal(keys, wakeup); err != nil {
			return req, err
		}
		req.Enc, req.Body = PushEncAES128GCM, body
	case a.Legacy && w.cfg.PlainLegacy:
		try := req
		try.Kind, try.Enc, try.Body = PushKindData, PushEncNone, datagram
		if fits(try) {
			return try, nil
		}
		req.Enc, req.Body = PushEncNone, wakeup
	}
	return req, nil
}
