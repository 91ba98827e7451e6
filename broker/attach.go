package broker

import (
	"context"
	"errors"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/tokensvc"
)

// pushChannel handles TERMINAL_ATTACH, TERMINAL_IDLE, TERMINAL_DETACH and DELIVERY_ACK.
func (srv *Server) pushChannel(s *session, d protocol.Datagram) error {
	if srv.pushCfg.Store == nil {
		return refuse(protocol.CodeUnavailable, "%s: push channels are not available on this broker", d.Type)
	}
	switch d.Type {
	case protocol.TypeTerminalAttach:
		return srv.handleAttach(s, d)
	case protocol.TypeTerminalIdle:
		return srv.handleIdle(s, d)
	case protocol.TypeTerminalDetach:
		return srv.handleDetach(s, d)
	default:
		return srv.handleAck(s, d)
	}
}

func (srv *Server) handleAttach(s *session, d protocol.Datagram) error {
	a, err := protocol.DecodeAttach(d.Data)
	if err != nil {
		return err
	}
	if _, err := srv.pushCfg.Policy.Check(a.URL); err != nil {
		s.log.Info("attach refused by URL policy", "url", tokensvc.Redact(a.URL), "err", err)
		return refuse(protocol.CodeForbidden, "token service URL not allowed: %v", errors.Unwrap(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
	defer cancel()
	err = srv.pushCfg.Store.PutAttach(ctx, registry.Attach{
		Terminal: s.terminal, Platform: a.Platform, URL: a.URL, Token: a.Token, Topic: a.Topic,
		P256DH: a.P256DH, Auth: a.Auth, SigKey: a.SigKey, Name: a.Name, Legacy: a.Legacy,
	})
	if errors.Is(err, registry.ErrInvalid) {
		return refuse(protocol.CodeMalformed, "%v", err)
	} else if err != nil {
		s.log.Error("attach not stored", "err", err)
		return refuse(protocol.CodeUnavailable, "attach not stored")
	}
	s.log.Info("attached", "platform", a.Platform, "url", tokensvc.Redact(a.URL), "token", registry.RedactToken(a.Token),
		"keys", a.P256DH != nil, "sigkey", len(a.SigKey), "legacy", a.Legacy, "name", a.Name)
	srv.emit(Event{Type: EventAttached, Terminal: s.terminal, Session: s.id, Platform: a.Platform, Detail: attachDetail(a)})
	s.send(protocol.TypeTerminalAttach, nil)
	return nil
}

func (srv *Server) handleDetach(s *session, d protocol.Datagram) error {
	if len(d.Data) != 0 {
		return refuse(protocol.CodeMalformed, "TERMINAL_DETACH carries no data")
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
	defer cancel()
	if err := srv.pushCfg.Store.DeleteAttach(ctx, s.terminal); err != nil && !errors.Is(err, registry.ErrNotFound) {
		s.log.Error("detach not stored", "err", err)
		return refuse(protocol.CodeUnavailable, "detach not stored")
	}
	s.log.Info("detached")
	srv.emit(Event{Type: EventDetached, Terminal: s.terminal, Session: s.id})
	s.send(protocol.TypeTerminalDetach, nil)
	return nil
}

// handleIdle answers TERMINAL_IDLE and stops writing to the socket: from now on datagrams for
// the terminal are stored and it is woken by push. Keep-alives are no longer required.
func (srv *Server) handleIdle(s *session, d protocol.Datagram) error {
	if len(d.Data) != 0 {
		return refuse(protocol.CodeMalformed, "TERMINAL_IDLE carries no data")
	}
	// Idle first, then the answer: a datagram routed after the terminal has its answer is
	// stored and pushed, never written to a socket the terminal may be dropping; one routed
	// before is written ahead of the answer, so the terminal sees it before it goes quiet.
	if s.state.CompareAndSwap(stateActive, stateIdle) {
		srv.metrics.sessions.WithLabelValues("active").Dec()
		srv.metrics.sessions.WithLabelValues("idle").Inc()
	}
	s.send(protocol.TypeTerminalIdle, nil)
	s.timer.Stop()
	s.log.Info("idle")
	srv.emit(Event{Type: EventIdle, Terminal: s.terminal, Session: s.id})
	s.mu.Lock()
	unacked := s.cursor > s.acked
	s.cursor = s.acked // what was sent but not acknowledged is replayed on reconnect
	s.mu.Unlock()
	// The terminal was connected after any earlier push: forget its quiet period, so that the
	// next datagram stored for it wakes it (a push sent while it was connected must not hold
	// that back).
	srv.waker.reconnected(s.terminal)
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
	n, _, err := srv.pushCfg.Store.Depth(ctx, s.terminal)
	cancel()
	if unacked || (err == nil && n > 0) {
		srv.waker.request(s.terminal, false)
	}
	return nil
}

// activeAgain makes an idle session active (a KEEP_ALIVE on the same socket).
func (srv *Server) activeAgain(s *session) {
	if s.state.CompareAndSwap(stateIdle, stateActive) {
		srv.metrics.sessions.WithLabelValues("idle").Dec()
		srv.metrics.sessions.WithLabelValues("active").Inc()
		s.log.Info("active again")
		srv.emit(Event{Type: EventActive, Terminal: s.terminal, Session: s.id})
		srv.noteWoken(s)
		if srv.waker != nil {
			srv.waker.reconnected(s.terminal)
		}
		s.kickPump()
	}
}
