package broker

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/registry"
)

// Session states.
const (
	stateHandshake int32 = iota
	stateActive
	stateIdle // TERMINAL_IDLE: nothing is written but CLOSE/REDIRECTION; datagrams are stored
)

// outMsg is one datagram waiting for a session's writer. Data is immutable and may be shared by
// several sessions (group fan-out); the writer encodes it with its own sequence number.
type outMsg struct {
	typ    protocol.Type
	flags  protocol.Flags
	number uint32 // used only with FlagBuffering (outbox sequence)
	data   []byte
}

// session is one terminal connection. The goroutine running Server.Accept is its reader; a
// writer goroutine exists only while there is something to write, so an idle session costs one
// goroutine and one timer.
type session struct {
	// Static after construction.
	srv    *Server
	conn   *websocket.Conn
	id     string
	remote string
	since  time.Time
	done   chan struct{} // closed once the connection is closed and the writer is gone

	// Set once during the handshake, before the session is visible to others; read-only after.
	terminal uint32
	user     uint32
	desc     string // the terminal's own description from its hello
	name     string // the device name registered for it
	log      *slog.Logger

	// Owned by the reader.
	malformed int
	timer     Timer // handshake deadline, then keep-alive expiry

	// Atomic: written by the reader, read by the admin API and the timer.
	state         atomic.Int32
	lastKeepAlive atomic.Int64 // unix nanoseconds

	// Owned by the writer goroutine.
	seq uint32

	// Guarded by mu.
	mu      sync.Mutex
	queue   []outMsg
	writing bool        // a writer goroutine is running
	disc    *Disconnect // set once: the session is ending
	flush   bool        // write what is queued before closing
	// Stored delivery (outbox.go): cursor is the highest outbox sequence queued on this
	// session, acked the highest acknowledged; one pump goroutine at most. owed: the pump last
	// stopped with a full window, so the store may hold more than the cursor.
	cursor, acked      uint64
	pumping, pumpAgain bool
	owed               bool

	// Guarded by srv.hub.mu.
	groups map[uint32]struct{}
}

func newSessionID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// enqueue hands m to the writer. It never blocks: a full queue ends the session as a slow
// consumer, so one terminal that stops reading delays nobody else.
func (s *session) enqueue(m outMsg) bool {
	s.mu.Lock()
	if s.disc != nil {
		s.mu.Unlock()
		s.srv.metrics.dropped.WithLabelValues("closing").Inc()
		return false
	}
	if len(s.queue) >= s.srv.cfg.SendQueue {
		d := CloseSlowConsumer
		s.disc, s.flush = &d, false
		s.queue = nil
		s.startWriterLocked()
		s.mu.Unlock()
		s.srv.metrics.dropped.WithLabelValues("queue_full").Inc()
		// The writer may be stuck in a write to this peer; unblock it now rather than after
		// the write timeout. CloseNow can wait on the connection's goroutines, so not here.
		go s.conn.CloseNow()
		return false
	}
	s.queue = append(s.queue, m)
	s.startWriterLocked()
	s.mu.Unlock()
	return true
}

// closeWith ends the session for reason d. Only the first reason counts. Queued datagrams are
// written first unless the reason is a slow consumer.
func (s *session) closeWith(d Disconnect) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disc != nil {
		return
	}
	s.disc = &d
	s.flush = !d.drops()
	if !s.flush {
		s.queue = nil
	}
	s.startWriterLocked()
}

func (s *session) startWriterLocked() {
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
}

// reason returns why the session ended (valid after done is closed).
func (s *session) reason() Disconnect {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disc == nil {
		return CloseReadError
	}
	return *s.disc
}

func (s *session) queueLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// writeLoop is the session's only writer. It runs while the queue is non-empty and, once a
// disconnect is set, writes the final datagram and closes the connection.
func (s *session) writeLoop() {
	buf := make([]byte, 0, 256)
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		disc := s.disc
		if len(batch) == 0 && disc == nil {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		for _, m := range batch {
			var err error
			if buf, err = s.write(buf, m); err != nil {
				s.fail()
				return
			}
		}
		if len(batch) == 0 && disc != nil {
			s.finish(*disc, buf)
			return
		}
	}
}

func (s *session) write(buf []byte, m outMsg) ([]byte, error) {
	number := m.number
	if m.flags&protocol.FlagBuffering == 0 {
		number = s.seq
		s.seq++
	}
	buf, err := protocol.Datagram{Type: m.typ, Flags: m.flags, Number: number, Data: m.data}.AppendTo(buf[:0])
	if err != nil {
		return buf, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.WriteTimeout)
	err = s.conn.Write(ctx, websocket.MessageBinary, buf)
	cancel()
	if err == nil {
		s.srv.metrics.countOut(m.typ)
	}
	return buf, err
}

// finish writes d's final datagram and closes the connection with d's code.
func (s *session) finish(d Disconnect, buf []byte) {
	if d.final != nil {
		if _, err := s.write(buf, outMsgOf(d.final())); err != nil {
			s.fail()
			return
		}
	}
	if d.drops() {
		s.conn.CloseNow()
	} else {
		s.conn.Close(d.Code, d.Reason)
	}
	close(s.done)
}

// fail drops the connection after a write error.
func (s *session) fail() {
	s.mu.Lock()
	if s.disc == nil {
		d := CloseSlowConsumer // a write that timed out or failed: the peer is not draining
		s.disc = &d
	}
	s.queue = nil
	s.mu.Unlock()
	s.conn.CloseNow()
	close(s.done)
}

func outMsgOf(d protocol.Datagram) outMsg {
	return outMsg{typ: d.Type, flags: d.Flags, number: d.Number, data: d.Data}
}

// send queues a datagram built by the broker for this session.
func (s *session) send(typ protocol.Type, data []byte) bool {
	return s.enqueue(outMsg{typ: typ, data: data})
}

// sendError answers the offending datagram with BROKER_ERROR.
func (s *session) sendError(code uint16, offending protocol.Type, reason string) {
	s.send(protocol.TypeBrokerError, protocol.BrokerError{Code: code, Offending: offending, Reason: reason}.Encode())
}

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// readDatagram reads the next message into a pooled buffer. The returned release func gives the
// buffer back; the datagram's Data is valid until then.
func (s *session) readDatagram(ctx context.Context) (protocol.Datagram, func(), error) {
	typ, r, err := s.conn.Reader(ctx)
	if err != nil {
		return protocol.Datagram{}, nil, err
	}
	bp := bufPool.Get().(*[]byte)
	limit := s.srv.cfg.MaxDatagram
	if cap(*bp) < limit+1 {
		*bp = make([]byte, limit+1)
	}
	buf := (*bp)[:limit+1]
	release := func() { bufPool.Put(bp) }
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		release()
		return protocol.Datagram{}, nil, errTooLarge
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	default:
		release()
		return protocol.Datagram{}, nil, err
	}
	if typ != websocket.MessageBinary {
		release()
		return protocol.Datagram{}, nil, errTextMessage
	}
	d, err := protocol.Decode(buf[:n])
	if err != nil {
		release()
		return protocol.Datagram{}, nil, err
	}
	return d, release, nil
}

var (
	errTooLarge    = errors.New("datagram larger than the broker's limit")
	errTextMessage = errors.New("text WebSocket message (datagrams are binary)")
)

// handshake runs hello → challenge → authentication. It returns false when the session must end
// (the disconnect is already set).
func (s *session) handshake(ctx context.Context) bool {
	srv := s.srv
	hello, release, err := s.readDatagram(ctx)
	if err != nil {
		s.handshakeReadFailed(err, protocol.TypeKeepAlive)
		return false
	}
	v, verr := protocol.DecodeVersionData(hello.Data)
	release()
	if hello.Type != protocol.TypeKeepAlive || verr != nil || v.Number == 0 {
		srv.metrics.authFailures.WithLabelValues("bad_hello").Inc()
		s.closeWith(withFinal(CloseProtocol, brokerError(protocol.CodeMalformed, hello.Type, "expected KEEP_ALIVE with version data")))
		return false
	}
	s.terminal, s.user, s.desc = v.Number, registry.UserOf(v.Number), v.Description
	s.log = s.log.With("terminal", s.terminal)

	if srv.limiter.locked(s.terminal, s.remote) {
		srv.metrics.authFailures.WithLabelValues("locked_out").Inc()
		s.log.Warn("authentication refused: locked out", "remote", s.remote)
		s.closeWith(CloseAuthLimited)
		return false
	}

	challenge := make([]byte, protocol.ChallengeSize)
	rand.Read(challenge)
	s.send(protocol.TypeChallenge, challenge)

	auth, release, err := s.readDatagram(ctx)
	if err != nil {
		s.handshakeReadFailed(err, protocol.TypeAuthentication)
		return false
	}
	defer release()
	if auth.Type != protocol.TypeAuthentication {
		srv.metrics.authFailures.WithLabelValues("bad_hello").Inc()
		s.closeWith(withFinal(CloseProtocol, brokerError(protocol.CodeMalformed, auth.Type, "expected AUTHENTICATION")))
		return false
	}

	lookupCtx, cancel := context.WithTimeout(ctx, DefaultStoreTimeout)
	term, err := srv.store.GetTerminal(lookupCtx, s.terminal)
	cancel()
	kind := ""
	switch {
	case errors.Is(err, registry.ErrNotFound):
		kind = "unknown_terminal"
	case err != nil:
		s.log.Error("registry lookup failed", "err", err)
		s.closeWith(withFinal(CloseStoreUnavail, brokerError(protocol.CodeUnavailable, protocol.TypeAuthentication, "registry unavailable")))
		return false
	default:
		want := protocol.AuthDigest(challenge, term.Password)
		if subtle.ConstantTimeCompare(auth.Data, want[:]) != 1 {
			kind = "password"
		}
	}
	if kind != "" {
		srv.metrics.authFailures.WithLabelValues(kind).Inc()
		if srv.limiter.fail(s.terminal, s.remote) {
			s.log.Warn("authentication failed; locking out", "remote", s.remote, "kind", kind)
			s.closeWith(CloseAuthLimited)
		} else {
			s.log.Info("authentication failed", "remote", s.remote, "kind", kind)
			s.closeWith(CloseAuthFailed)
		}
		return false
	}
	s.name = term.Name
	return true
}

func withFinal(d Disconnect, final func() protocol.Datagram) Disconnect {
	d.final = final
	return d
}

// handshakeReadFailed ends a session whose hello or authentication could not be read. Before
// authentication there is no second chance: malformed input gets BROKER_ERROR 400 and close 4400.
func (s *session) handshakeReadFailed(err error, expected protocol.Type) {
	if errors.Is(err, protocol.ErrMalformed) || errors.Is(err, errTextMessage) {
		s.srv.metrics.malformedTotal.Inc()
		s.srv.metrics.authFailures.WithLabelValues("bad_hello").Inc()
		s.closeWith(withFinal(CloseProtocol, brokerError(protocol.CodeMalformed, expected, err.Error())))
		return
	}
	s.readFailed(err)
}

// readFailed maps a read error to the session's disconnect.
func (s *session) readFailed(err error) {
	switch {
	case errors.Is(err, errTooLarge):
		s.closeWith(withFinal(CloseTooLarge, brokerError(protocol.CodeTooLarge, 0, errTooLarge.Error())))
	case websocket.CloseStatus(err) == websocket.StatusNormalClosure || websocket.CloseStatus(err) == websocket.StatusGoingAway:
		s.closeWith(CloseNormal)
	default:
		s.closeWith(CloseReadError)
	}
}

// onTimer fires for the handshake deadline and, once active, for keep-alive expiry.
func (s *session) onTimer() {
	if s.state.Load() == stateActive {
		s.closeWith(CloseKeepAlive)
	} else {
		s.closeWith(CloseHandshake)
	}
}

// run is the reader loop of an authenticated session.
func (s *session) run(ctx context.Context) {
	for {
		d, release, err := s.readDatagram(ctx)
		if err != nil {
			if errors.Is(err, protocol.ErrMalformed) || errors.Is(err, errTextMessage) {
				if s.malformedInput(0, err) {
					continue
				}
				return
			}
			s.readFailed(err)
			return
		}
		ok := s.srv.dispatch(s, d)
		release()
		if !ok {
			return
		}
	}
}

// malformedInput answers a malformed datagram with BROKER_ERROR 400 and reports whether the
// session goes on (three in a row end it).
func (s *session) malformedInput(typ protocol.Type, err error) bool {
	s.srv.metrics.malformedTotal.Inc()
	s.malformed++
	s.log.Info("malformed datagram", "type", typ, "err", err, "in_a_row", s.malformed)
	if s.malformed >= s.srv.cfg.MaxMalformed {
		s.closeWith(withFinal(CloseMalformed, brokerError(protocol.CodeMalformed, typ, err.Error())))
		return false
	}
	s.sendError(protocol.CodeMalformed, typ, err.Error())
	return true
}
