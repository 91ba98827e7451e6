package broker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/registry"
)

// Stored delivery (PROTOCOL.md §5). Every datagram that must not be lost is appended to the
// destination terminal's outbox (fsync'd, group-committed) before anything else happens. A live
// session then receives it through its pump: the pump is the only reader of the session's
// outbox cursor, reads what follows the cursor from the store, and queues it with flag
// Buffering and number = outbox sequence, at most DeliveryWindow unacknowledged at a time. A
// new session starts with the cursor at zero, so whatever was not acknowledged is replayed in
// order after every (re)authentication. DELIVERY_ACK deletes up to its sequence.

// storeFor appends datagram to terminal's outbox and then delivers it (active session) or wakes
// the terminal. It returns the entry, the terminal's state and the wake outcome.
func (srv *Server) storeFor(ctx context.Context, terminal uint32, datagram []byte, waitPush bool) (registry.Entry, string, string, error) {
	p := srv.pushCfg
	e, err := p.Store.Append(ctx, terminal, datagram, p.OutboxTTL)
	if err != nil {
		srv.metrics.outboxAppends.WithLabelValues("error").Inc()
		return e, "", "", err
	}
	srv.metrics.outboxAppends.WithLabelValues("ok").Inc()
	state, outcome := srv.deliverOrWake(terminal, &e, waitPush)
	return e, state, outcome, nil
}

// storeContext is context.WithTimeout(context.Background(), timeout) for the store calls of
// a durable text, except that its timer is started only when something waits on Done. The
// registry's committer takes a job without waiting while its queue has room, which is almost
// always, so the timer of WithTimeout (a timer heap insert and delete per call, ≈ 3.7 % of the
// broker's CPU per durable text) bounded nothing. Call release when done with it; afterwards it
// is cancelled.
type storeContext struct {
	deadline time.Time
	once     sync.Once
	started  atomic.Bool // inner is set
	inner    context.Context
	cancel   context.CancelFunc // nil when release came first
}

func newStoreContext(timeout time.Duration) *storeContext {
	return &storeContext{deadline: time.Now().Add(timeout)}
}

// start returns the real context, starting its timer on first use.
func (c *storeContext) start() context.Context {
	c.once.Do(func() {
		c.inner, c.cancel = context.WithDeadline(context.Background(), c.deadline)
		c.started.Store(true)
	})
	return c.inner
}

func (c *storeContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *storeContext) Done() <-chan struct{}       { return c.start().Done() }
func (c *storeContext) Value(any) any               { return nil }

func (c *storeContext) Err() error {
	if c.started.Load() {
		return c.inner.Err()
	}
	if time.Now().Before(c.deadline) {
		return nil
	}
	return context.DeadlineExceeded
}

// release cancels the context and stops its timer, if one was started.
func (c *storeContext) release() {
	c.once.Do(func() {
		c.inner = canceledContext
		c.started.Store(true)
	})
	if c.cancel != nil {
		c.cancel()
	}
}

var canceledContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// deliverOrWake makes stored datagrams reach terminal: over its socket when it is active,
// by a push otherwise. e, when given, is the entry just appended.
func (srv *Server) deliverOrWake(terminal uint32, e *registry.Entry, waitPush bool) (state, outcome string) {
	s := srv.hub.session(terminal)
	if s != nil && s.state.Load() == stateActive {
		if e != nil {
			s.offer(*e)
		} else {
			s.kickPump()
		}
		return "active", WakeNotNeeded
	}
	state = "offline"
	if s != nil {
		state = "idle"
	}
	return state, srv.waker.request(terminal, waitPush)
}

// offer queues an entry that was just appended when it is the next one the session is owed and
// the window has room, without reading it back from the store (the common case of a live
// terminal keeping up). Otherwise the pump takes over. Holding the pump role while queueing keeps
// deliveries in sequence order.
func (s *session) offer(e registry.Entry) {
	s.mu.Lock()
	direct := !s.pumping && s.disc == nil && s.state.Load() == stateActive &&
		s.cursor+1 == e.Seq && int(s.cursor-s.acked) < s.srv.pushCfg.DeliveryWindow
	if direct {
		s.pumping, s.cursor = true, e.Seq
	}
	s.mu.Unlock()
	if !direct {
		s.kickPump()
		return
	}
	if d, err := protocol.Decode(e.Datagram); err == nil && s.enqueue(outMsg{typ: d.Type, flags: d.Flags | protocol.FlagBuffering, number: uint32(e.Seq), data: d.Data}) {
		s.srv.metrics.storedDelivered.Inc()
	}
	s.mu.Lock()
	again := s.pumpAgain
	s.pumping, s.pumpAgain = false, false
	s.mu.Unlock()
	if again {
		s.kickPump()
	}
}

// kickPump makes the session's pump look at the outbox again.
func (s *session) kickPump() {
	if s.srv.pushCfg.Store == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disc != nil || s.state.Load() != stateActive {
		return
	}
	if s.pumping {
		s.pumpAgain = true
		return
	}
	s.pumping = true
	go s.pump()
}

// pump queues stored datagrams after the cursor, within the delivery window.
func (s *session) pump() {
	srv := s.srv
	for {
		s.mu.Lock()
		cursor, acked := s.cursor, s.acked
		s.pumpAgain = false
		s.mu.Unlock()
		room := srv.pushCfg.DeliveryWindow - int(cursor-acked)
		var entries []registry.Entry
		if room > 0 && s.state.Load() == stateActive {
			ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
			var err error
			entries, err = srv.pushCfg.Store.Pending(ctx, s.terminal, cursor, room)
			cancel()
			if err != nil && !errors.Is(err, registry.ErrClosed) {
				s.log.Error("outbox read failed", "err", err)
			}
		}
		if len(entries) > 0 {
			s.mu.Lock()
			if s.cursor == 0 && s.acked == 0 {
				// A new session: everything before the oldest stored entry was acknowledged
				// long ago. Start the window there, not at sequence 0.
				s.acked = entries[0].Seq - 1
				s.cursor = s.acked
			}
			s.mu.Unlock()
		}
		for _, e := range entries {
			d, err := protocol.Decode(e.Datagram)
			// Advance the cursor before queueing: the terminal may acknowledge the entry
			// before this goroutine runs again, and acks are clamped to the cursor.
			s.mu.Lock()
			s.cursor = e.Seq
			s.mu.Unlock()
			if err != nil {
				s.log.Error("stored datagram does not decode; skipped", "seq", e.Seq, "err", err)
				continue
			}
			if !s.enqueue(outMsg{typ: d.Type, flags: d.Flags | protocol.FlagBuffering, number: uint32(e.Seq), data: d.Data}) {
				break
			}
			srv.metrics.storedDelivered.Inc()
		}
		s.mu.Lock()
		if len(entries) == 0 && !s.pumpAgain || s.disc != nil {
			s.pumping = false
			s.owed = room <= 0
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// handleAck deletes what the terminal acknowledged (cumulative) and lets the pump go on.
func (srv *Server) handleAck(s *session, d protocol.Datagram) error {
	seq, err := protocol.DecodeU32("delivery ack", d.Data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	upTo := min(uint64(seq), s.cursor) // nothing beyond what this session was given
	prev := s.acked
	if upTo > s.acked {
		s.acked = upTo
	}
	s.mu.Unlock()
	if upTo <= prev {
		return nil
	}
	ctx := newStoreContext(DefaultStoreTimeout)
	n, err := srv.pushCfg.Store.Ack(ctx, s.terminal, upTo)
	ctx.release()
	if err != nil {
		s.log.Error("outbox ack failed", "err", err)
		return refuse(protocol.CodeUnavailable, "acknowledgement not stored; it will be replayed")
	}
	srv.metrics.acked.Add(float64(n))
	if s.log.Enabled(context.Background(), slog.LevelDebug) { // the arguments would allocate
		s.log.Debug("delivered", "acked_up_to", upTo, "deleted", n)
	}
	srv.emit(Event{Type: EventDelivered, Terminal: s.terminal, Session: s.id, Detail: map[string]any{"acked_up_to": upTo, "count": n}})
	srv.noteDelivered(s.terminal)
	s.kickPumpIfOwed()
	return nil
}

// kickPumpIfOwed is kickPump after an acknowledgement: the window has room again, which
// matters only if the pump stopped for want of it (or is running and may be about to). A pump
// that stopped with room had read everything after the cursor; what was appended since was
// offered or kicked by its own append.
func (s *session) kickPumpIfOwed() {
	s.mu.Lock()
	owed := s.owed || s.pumping
	s.mu.Unlock()
	if owed {
		s.kickPump()
	}
}

// expireLoop removes expired outbox entries every ExpireInterval and counts them.
func (srv *Server) expireLoop() {
	defer srv.bg.Done()
	for {
		timer := srv.cfg.Clock.AfterFunc(srv.pushCfg.ExpireInterval, func() {
			select {
			case srv.expireTick <- struct{}{}:
			default:
			}
		})
		select {
		case <-srv.bgStop:
			timer.Stop()
			return
		case <-srv.expireTick:
		}
		srv.expireOnce(srv.cfg.Clock.Now())
	}
}

// expireOnce removes the outbox entries whose TTL ended by now; it returns how many.
func (srv *Server) expireOnce(now time.Time) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	expired, err := srv.pushCfg.Store.Expire(ctx, now)
	if err != nil && !errors.Is(err, registry.ErrClosed) {
		srv.log.Error("outbox expiry failed", "err", err)
	}
	for _, e := range expired {
		srv.metrics.expired.Inc()
		srv.log.Info("outbox entry expired unacknowledged", "terminal", e.Terminal, "seq", e.Seq, "stored", e.Stored)
		srv.emit(Event{Type: EventOutboxExpired, Terminal: e.Terminal, Detail: map[string]any{"seq": e.Seq, "stored": e.Stored}})
	}
	if blobs, ok := srv.pushCfg.Store.(registry.Blobs); ok {
		if _, err := blobs.ExpireBlobs(ctx, now); err != nil && !errors.Is(err, registry.ErrClosed) {
			srv.log.Error("token cache expiry failed", "err", err)
		}
	}
	srv.prunePushMarks(now)
	srv.sweepAudit(ctx, now)
	return len(expired)
}

// pendingLister is implemented by stores that can list terminals with stored datagrams
// (*registry.Badger does).
type pendingLister interface {
	PendingTerminals(ctx context.Context) ([]uint32, error)
}

// resumeWakes runs once at start: wakes are not persisted, so terminals that were owed
// datagrams when the broker stopped (a push waiting for its retry, or never sent) are woken
// again now. Terminals without a valid attach are skipped; a full wake queue is waited out.
func (srv *Server) resumeWakes() {
	defer srv.bg.Done()
	lister, ok := srv.pushCfg.Store.(pendingLister)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	terminals, err := lister.PendingTerminals(ctx)
	cancel()
	if err != nil {
		if !errors.Is(err, registry.ErrClosed) {
			srv.log.Error("could not list terminals with stored datagrams; their wakes wait for the next datagram", "err", err)
		}
		return
	}
	resumed := 0
	for _, t := range terminals {
		if srv.hub.session(t) != nil {
			continue // connected already: the replay delivers
		}
		ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
		a, err := srv.pushCfg.Store.GetAttach(ctx, t)
		cancel()
		if err != nil || a.Invalid {
			continue
		}
		for srv.waker.request(t, false) == WakeOverloaded {
			select {
			case <-srv.bgStop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		resumed++
	}
	if resumed > 0 {
		srv.log.Info("resumed wakes for terminals owed stored datagrams", "terminals", resumed)
	}
}
