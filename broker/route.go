package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/registry"
)

// dispatch handles one datagram from an authenticated session. It reports whether the session
// goes on. d.Data is only valid during the call.
func (srv *Server) dispatch(s *session, d protocol.Datagram) bool {
	srv.metrics.datagramsIn.WithLabelValues(typeLabel(d.Type)).Inc()
	err := srv.handle(s, d)
	if errors.Is(err, protocol.ErrMalformed) {
		return s.malformedInput(d.Type, err)
	}
	s.malformed = 0
	var be *protocol.BrokerError
	if errors.As(err, &be) {
		s.sendError(be.Code, d.Type, be.Reason)
	}
	return !errors.Is(err, errEndSession)
}

var errEndSession = errors.New("session ends")

func refuse(code uint16, format string, args ...any) error {
	return &protocol.BrokerError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

func (srv *Server) handle(s *session, d protocol.Datagram) error {
	switch d.Type {
	case protocol.TypeKeepAlive:
		s.lastKeepAlive.Store(srv.cfg.Clock.Now().UnixNano())
		s.timer.Reset(srv.cfg.KeepAliveTimeout)
		s.send(protocol.TypeKeepAlive, nil)
		srv.activeAgain(s)
		return nil
	case protocol.TypeClose:
		s.closeWith(CloseNormal)
		return errEndSession
	case protocol.TypeMessageText:
		return srv.routeText(s, d)
	case protocol.TypeMessageStatus:
		st, err := protocol.DecodeTextStatus(d.Data)
		if err != nil {
			return err
		}
		return srv.routeFrom(s, st.Source, st.Destination, d)
	case protocol.TypeLocationRequest:
		r, err := protocol.DecodeLocationRequest(d.Data)
		if err != nil {
			return err
		}
		if r.Destination == 0 {
			return fmt.Errorf("%w: location request from a terminal needs the extended form with a destination", protocol.ErrMalformed)
		}
		return srv.routeFrom(s, r.Source, r.Destination, d)
	case protocol.TypeLocationReport:
		r, err := protocol.DecodeLocationReport(d.Data)
		if err != nil {
			return err
		}
		return srv.routeFrom(s, r.Source, r.Destination, d)
	case protocol.TypeSubscription, protocol.TypeCancelling:
		return srv.subscription(s, d)
	case protocol.TypeTerminalAttach, protocol.TypeTerminalIdle, protocol.TypeTerminalDetach, protocol.TypeDeliveryAck:
		return srv.pushChannel(s, d)
	case protocol.TypeTerminalWakeup, protocol.TypeReport:
		return nil
	case protocol.TypeChallenge, protocol.TypeAuthentication, protocol.TypeRedirection, protocol.TypeBrokerError:
		return refuse(protocol.CodeMalformed, "%s is not valid from a terminal after authentication", d.Type)
	default:
		srv.metrics.unknownTypes.Inc()
		return nil
	}
}

// checkSource refuses a datagram that claims to come from someone else. A terminal may speak as
// itself or as its DMR user.
func (s *session) checkSource(source uint32) error {
	if source == s.terminal || source == s.user {
		return nil
	}
	return refuse(protocol.CodeForbidden, "source %d is neither this terminal nor its user", source)
}

// routeFrom routes a private datagram after checking that its source is the sender.
func (srv *Server) routeFrom(s *session, source, dest uint32, d protocol.Datagram) error {
	if err := s.checkSource(source); err != nil {
		return err
	}
	return srv.routePrivate(s, dest, d)
}

func (srv *Server) routeText(s *session, d protocol.Datagram) error {
	source, dest, option, err := protocol.TextMessageHeader(d.Data)
	if err != nil {
		return err
	}
	// Validate the text itself: receivers must never get broken UTF-16.
	if err := protocol.CheckUTF16LE(d.Data[16:]); err != nil {
		return err
	}
	if err := s.checkSource(source); err != nil {
		return err
	}
	if option == protocol.OptionGroup {
		srv.routeGroup(s, dest, d)
		return nil
	}
	return srv.routePrivate(s, dest, d)
}

// routeGroup sends a group datagram to the active subscribers of tg. Group traffic is live: it
// is never stored and never wakes anyone.
func (srv *Server) routeGroup(s *session, tg uint32, d protocol.Datagram) {
	members := srv.hub.members(tg, s)
	if len(members) == 0 {
		srv.metrics.routed.WithLabelValues("group_empty").Inc()
		return
	}
	m := outMsg{typ: d.Type, data: bytes.Clone(d.Data)} // shared, immutable
	for _, r := range members {
		if r.state.Load() == stateActive {
			r.enqueue(m)
		}
	}
	srv.metrics.routed.WithLabelValues("group").Inc()
}

// routePrivate delivers a datagram addressed to a terminal id or a DMR user id. Texts and
// location requests are stored in each destination's outbox first when push is enabled (they
// must not be lost); everything else, and everything without push, goes to live sessions only.
func (srv *Server) routePrivate(s *session, dest uint32, d protocol.Datagram) error {
	stored := srv.pushCfg.Store != nil && (d.Type == protocol.TypeMessageText || d.Type == protocol.TypeLocationRequest)
	if !stored {
		return srv.routeLive(s, dest, d)
	}
	ctx := newStoreContext(DefaultStoreTimeout)
	defer ctx.release()
	targets, err := srv.resolve(ctx, dest)
	if err != nil {
		s.log.Error("registry lookup failed", "dest", dest, "err", err)
		return refuse(protocol.CodeUnavailable, "registry unavailable")
	}
	raw, err := protocol.Datagram{Type: d.Type, Flags: d.Flags &^ protocol.FlagBuffering, Data: d.Data}.Encode()
	if err != nil {
		return err
	}
	n := 0
	for _, t := range targets {
		if t == s.terminal && dest != s.terminal {
			continue // a text to one's own user id does not come back to the sending device
		}
		if _, _, _, err := srv.storeFor(ctx, t, raw, false); err != nil {
			s.log.Error("outbox append failed", "dest", t, "err", err)
			return refuse(protocol.CodeUnavailable, "could not store for terminal %d; not accepted", t)
		}
		n++
	}
	if n == 0 {
		srv.metrics.routed.WithLabelValues("not_found").Inc()
		return refuse(protocol.CodeNotFound, "unknown destination %d", dest)
	}
	srv.metrics.routed.WithLabelValues("stored").Inc()
	return nil
}

// routeLive sends a datagram to the live, active sessions of dest. Registered terminals that
// are not connected (or idle) do not get it: this traffic is never stored.
func (srv *Server) routeLive(s *session, dest uint32, d protocol.Datagram) error {
	m := outMsg{typ: d.Type, data: bytes.Clone(d.Data)}
	reached := 0
	for _, r := range srv.hub.destination(dest) {
		if r.state.Load() == stateActive && r.enqueue(m) {
			reached++
		}
	}
	if reached > 0 {
		srv.metrics.routed.WithLabelValues("live").Inc()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
	defer cancel()
	targets, err := srv.resolve(ctx, dest)
	if err != nil {
		s.log.Error("registry lookup failed", "dest", dest, "err", err)
		return refuse(protocol.CodeUnavailable, "registry unavailable")
	}
	if len(targets) == 0 {
		srv.metrics.routed.WithLabelValues("not_found").Inc()
		return refuse(protocol.CodeNotFound, "unknown destination %d", dest)
	}
	srv.metrics.routed.WithLabelValues("offline").Inc()
	return refuse(protocol.CodeNotFound, "destination %d is not connected", dest)
}

// resolve returns the registered terminal ids a private datagram for dest is meant for.
func (srv *Server) resolve(ctx context.Context, dest uint32) ([]uint32, error) {
	// A 9-digit id is a terminal, never a DMR user (users have at most 8 digits), and a terminal
	// with a live session is registered: the common case needs no registry read.
	if dest >= 100_000_000 && dest <= 999_999_999 {
		if srv.hub.session(dest) != nil {
			return []uint32{dest}, nil
		}
		if _, err := srv.store.GetTerminal(ctx, dest); err == nil {
			return []uint32{dest}, nil
		} else if errors.Is(err, registry.ErrNotFound) {
			return nil, nil
		} else {
			return nil, err
		}
	}
	var out []uint32
	if _, err := srv.store.GetTerminal(ctx, dest); err == nil {
		out = append(out, dest)
	} else if !errors.Is(err, registry.ErrNotFound) {
		return nil, err
	}
	user, err := srv.store.UserTerminals(ctx, dest)
	if err != nil {
		return nil, err
	}
	for _, t := range user {
		if t.ID != dest {
			out = append(out, t.ID)
		}
	}
	return out, nil
}

// subscription handles SUBSCRIPTION and CANCELLING; both are echoed on success (Rewind's reply).
func (srv *Server) subscription(s *session, d protocol.Datagram) error {
	if d.Type == protocol.TypeCancelling && len(d.Data) == 0 {
		srv.hub.unsubscribe(s, 0)
		s.send(d.Type, nil)
		return nil
	}
	sub, err := protocol.DecodeSubscription(d.Data)
	if err != nil {
		return err
	}
	if sub.Type == protocol.SubscriptionGroup {
		if sub.Number == 0 {
			return refuse(protocol.CodeMalformed, "talkgroup 0")
		}
		if d.Type == protocol.TypeCancelling {
			srv.hub.unsubscribe(s, sub.Number)
		} else if !srv.hub.subscribe(s, sub.Number, srv.cfg.MaxSubscriptions) {
			return refuse(protocol.CodeRateLimited, "at most %d talkgroups per session", srv.cfg.MaxSubscriptions)
		}
	} else if sub.Type != protocol.SubscriptionPrivate {
		return refuse(protocol.CodeMalformed, "subscription type %d (want 5 or 7)", sub.Type)
	}
	s.send(d.Type, sub.Encode())
	return nil
}
