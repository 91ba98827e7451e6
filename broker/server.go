// Package broker keeps terminals' Rewind sessions over WebSocket and routes their traffic.
//
// A Server owns every session. Its HTTP handler only upgrades the connection and hands it to
// a session, which owns the connection until it ends: one goroutine runs the handshake, then
// another the session's reader; a writer goroutine runs only while there is something to send.
// Sessions are indexed by the hub (terminal id, DMR user id, talkgroup); routing looks sessions
// up there and queues datagrams on them without ever writing to a socket itself.
package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/registry"
)

// Server is a Rewind broker node.
type Server struct {
	cfg          Config
	store        registry.Store
	log          *slog.Logger
	metrics      *metrics
	hub          *hub
	limiter      *authLimiter
	pushCfg      PushConfig // zero (nil Store) when push is disabled
	tokenMetrics *tokenMetrics
	waker        *waker // nil when push is disabled
	events       *eventLog

	pushMarks pushMarks // when terminals were last pushed (events.go)

	// Background work (outbox expiry): stopped by Shutdown.
	bg         sync.WaitGroup
	bgStop     chan struct{}
	expireTick chan struct{}

	onClosed func(*session) // test hook: called after a connection has ended

	mu       sync.Mutex
	stopOnce sync.Once
	draining bool
	conns    map[*session]struct{} // every connection, handshake included
	wg       sync.WaitGroup
}

// New returns a Server using store for terminals.
func New(cfg Config, store registry.Store) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	srv := &Server{
		cfg:        cfg,
		store:      store,
		log:        cfg.Logger,
		metrics:    newMetrics(),
		hub:        newHub(),
		limiter:    newAuthLimiter(cfg.Clock, cfg.AuthFailures, cfg.AuthWindow),
		conns:      make(map[*session]struct{}),
		bgStop:     make(chan struct{}),
		expireTick: make(chan struct{}, 1),
	}
	srv.events = newEventLog(cfg, srv.metrics)
	srv.tokenMetrics = newTokenMetrics(srv)
	srv.metrics.registry.MustRegister(srv.tokenMetrics)
	if cfg.Push != nil {
		pc, err := cfg.Push.withDefaults()
		if err != nil {
			return nil, err
		}
		srv.pushCfg = pc
		srv.waker = newWaker(srv, pc)
		srv.bg.Add(2)
		go srv.expireLoop()
		go srv.resumeWakes()
	}
	return srv, nil
}

// ServeHTTP upgrades a request on /rewind to a WebSocket and serves the session.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	srv.mu.Lock()
	draining := srv.draining
	srv.mu.Unlock()
	if draining {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "broker is shutting down", http.StatusServiceUnavailable)
		return
	}
	conn, err := websocket.Accept(withSmallBuffers(w), r, &websocket.AcceptOptions{
		OriginPatterns:  srv.cfg.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled, // datagrams are small and mostly binary
	})
	if err != nil {
		srv.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// The handshake runs on this goroutine; the authenticated session's reader on a fresh one,
	// so that this goroutine (whose stack grew through net/http's request parsing and the
	// password lookup) ends, and the request, its headers and net/http's per-request state
	// become garbage instead of living as long as the session (docs/benchmarks.md).
	if s := srv.open(context.Background(), conn, r.RemoteAddr); s != nil {
		go s.serve(context.Background())
	}
}

// Accept serves one terminal connection until it ends, and always closes it. ctx carries values
// only: a session ends by being closed (kick, replacement, drain, Shutdown), not by ctx.
func (srv *Server) Accept(ctx context.Context, conn *websocket.Conn, remoteAddr string) {
	// Never cancelled: coder/websocket registers a cancel callback for every read on a context
	// that can be cancelled, an allocation per datagram and per idle session for nothing.
	ctx = context.WithoutCancel(ctx)
	if s := srv.open(ctx, conn, remoteAddr); s != nil {
		s.serve(ctx)
	}
}

// open runs the handshake of a new connection; ctx must never be cancelled (see Accept). It
// returns the session once it is authenticated and live (serve then owns it), or nil when the
// connection has ended.
func (srv *Server) open(ctx context.Context, conn *websocket.Conn, remoteAddr string) *session {
	conn.SetReadLimit(-1) // the session enforces cfg.MaxDatagram itself, to answer 413
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	s := &session{
		srv:    srv,
		conn:   conn,
		id:     newSessionID(),
		remote: host,
		since:  srv.cfg.Clock.Now(),
		done:   make(chan struct{}),
	}
	s.log = srv.log.With("session", s.id)

	srv.mu.Lock()
	if srv.draining {
		srv.mu.Unlock()
		conn.Close(CloseDrain.Code, CloseDrain.Reason)
		return nil
	}
	srv.conns[s] = struct{}{}
	srv.wg.Add(1) // done by closed
	srv.mu.Unlock()

	srv.metrics.sessions.WithLabelValues("handshake").Inc()
	s.timer = srv.cfg.Clock.AfterFunc(srv.cfg.HandshakeTimeout, s.onTimer)
	if s.handshake(ctx) && srv.activate(s) {
		return s
	}
	srv.closed(s, false)
	return nil
}

// serve reads an authenticated session's datagrams until the session ends, then cleans up.
// Whatever ends the session (reader error, timer, replacement, drain) sets a disconnect and the
// writer closes the connection; the reader then fails and run returns.
func (s *session) serve(ctx context.Context) {
	s.run(ctx)
	s.srv.closed(s, true)
}

// closed cleans up after a connection whose reader is done; active says whether it was an
// authenticated, live session.
func (srv *Server) closed(s *session, active bool) {
	defer srv.wg.Done()
	s.timer.Stop()
	// The reader is done. Make sure the writer closes the connection, then wait for it.
	s.closeWith(CloseReadError)
	<-s.done

	srv.mu.Lock()
	delete(srv.conns, s)
	srv.mu.Unlock()
	reason := s.reason()
	srv.metrics.closes.WithLabelValues(reason.Reason).Inc()
	if active {
		srv.hub.remove(s)
		srv.wakeIfOwed(s)
		srv.metrics.sessions.WithLabelValues(stateName(s.state.Load())).Dec()
		s.log.Info("session closed", "reason", reason.Reason, "code", int(reason.Code),
			"duration", srv.cfg.Clock.Now().Sub(s.since).Round(time.Millisecond))
		srv.emit(Event{Type: EventSessionClosed, Terminal: s.terminal, Session: s.id, Reason: reason.Reason,
			Detail: map[string]any{"code": int(reason.Code), "duration_s": srv.cfg.Clock.Now().Sub(s.since).Seconds()}})
		ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
		if err := srv.store.TouchTerminal(ctx, s.terminal, srv.cfg.Clock.Now()); err != nil && !errors.Is(err, registry.ErrNotFound) {
			s.log.Warn("could not record last seen", "err", err)
		}
		cancel()
	} else {
		srv.metrics.sessions.WithLabelValues("handshake").Dec()
		s.log.Debug("connection closed before authentication", "reason", reason.Reason, "remote", s.remote)
	}
	if srv.onClosed != nil {
		srv.onClosed(s)
	}
}

// wakeIfOwed schedules a wake for a terminal whose session ended (without being replaced)
// while stored datagrams still wait for it: delivered but unacknowledged, or stored since.
func (srv *Server) wakeIfOwed(s *session) {
	if srv.waker == nil || srv.hub.session(s.terminal) != nil {
		return
	}
	if r := s.reason(); r.Reason == CloseDrain.Reason || r.Reason == CloseDeleted.Reason {
		return // the broker is restarting (terminals reconnect), or the terminal is gone
	}
	srv.waker.reconnected(s.terminal) // it was connected after any earlier push (see handleIdle)
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
	n, _, err := srv.pushCfg.Store.Depth(ctx, s.terminal)
	cancel()
	if err == nil && n > 0 {
		srv.waker.request(s.terminal, false)
	}
}

// activate makes an authenticated session live: it replaces an older session of the same
// terminal and answers the authentication.
func (srv *Server) activate(s *session) bool {
	srv.mu.Lock()
	draining := srv.draining
	srv.mu.Unlock()
	if draining {
		s.closeWith(CloseDrain)
		return false
	}
	s.state.Store(stateActive)
	s.lastKeepAlive.Store(srv.cfg.Clock.Now().UnixNano())
	s.timer.Reset(srv.cfg.KeepAliveTimeout)
	srv.limiter.succeed(s.terminal)
	if old := srv.hub.add(s); old != nil {
		old.log.Info("session replaced", "by", s.id)
		old.closeWith(CloseReplaced)
	}
	srv.metrics.sessions.WithLabelValues("handshake").Dec()
	srv.metrics.sessions.WithLabelValues("active").Inc()
	srv.metrics.setups.Inc()
	s.log.Info("session opened", "remote", s.remote, "user", s.user, "client", s.desc)
	srv.emit(Event{Type: EventSessionOpened, Terminal: s.terminal, Session: s.id,
		Detail: map[string]any{"remote": s.remote, "user": s.user, "client": s.desc}})
	srv.noteWoken(s)
	s.send(protocol.TypeKeepAlive, nil)
	if srv.waker != nil {
		srv.waker.reconnected(s.terminal)
		s.kickPump() // replay everything not yet acknowledged, in order
	}
	// Record the login (group-committed with other writes); the terminal already has its answer.
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
	if err := srv.store.TouchTerminal(ctx, s.terminal, srv.cfg.Clock.Now()); err != nil && !errors.Is(err, registry.ErrNotFound) {
		s.log.Warn("could not record last seen", "err", err)
	}
	cancel()
	return true
}

// Shutdown drains the broker: new connections are refused, every session gets REDIRECTION
// (reconnect to the same URL after a short random delay) and close 1012. It returns when all
// sessions have ended, or drops the remaining ones when ctx ends or the drain timeout passes.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	srv.draining = true
	conns := make([]*session, 0, len(srv.conns))
	for s := range srv.conns {
		conns = append(conns, s)
	}
	srv.mu.Unlock()
	for _, s := range conns {
		s.closeWith(CloseDrain)
	}
	done := make(chan struct{})
	go func() { srv.wg.Wait(); close(done) }()
	timer := time.NewTimer(srv.cfg.DrainTimeout)
	defer timer.Stop()
	defer srv.stopBackground()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	case <-timer.C:
	}
	srv.mu.Lock()
	for s := range srv.conns {
		s.conn.CloseNow()
	}
	srv.mu.Unlock()
	<-done
	return ctx.Err()
}

// stopBackground stops the waker and the expiry loop (once).
func (srv *Server) stopBackground() {
	srv.stopOnce.Do(func() {
		srv.events.close() // ends SSE handlers, after the drained sessions' events
		close(srv.bgStop)
		srv.bg.Wait()
		if srv.waker != nil {
			srv.waker.close()
		}
	})
}

// Kick ends a terminal's live session with reason d. It reports whether there was one.
func (srv *Server) Kick(terminal uint32, d Disconnect) bool {
	s := srv.hub.session(terminal)
	if s == nil {
		return false
	}
	s.closeWith(d)
	return true
}

// SessionInfo describes a live session for operators.
type SessionInfo struct {
	Session       string    `json:"session"`
	Terminal      uint32    `json:"terminal"`
	User          uint32    `json:"user"`
	State         string    `json:"state"`
	Remote        string    `json:"remote"`
	Name          string    `json:"name,omitempty"`
	Client        string    `json:"client,omitempty"`
	Since         time.Time `json:"since"`
	LastKeepAlive time.Time `json:"last_keepalive"`
	QueueDepth    int       `json:"queue_depth"`
	Talkgroups    []uint32  `json:"talkgroups,omitempty"`
}

// Sessions lists the live (authenticated) sessions.
func (srv *Server) Sessions() []SessionInfo {
	all := srv.hub.all()
	out := make([]SessionInfo, 0, len(all))
	for _, s := range all {
		out = append(out, srv.sessionInfo(s))
	}
	return out
}

// Metrics returns the Prometheus registry holding the broker's metrics.
func (srv *Server) Metrics() http.Handler { return promHandler(srv.metrics) }

func stateName(st int32) string {
	switch st {
	case stateActive:
		return "active"
	case stateIdle:
		return "idle"
	}
	return "handshake"
}
