package testclient

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coder/websocket"

	"github.com/rewind-broker/rewind/protocol"
)

// ErrClosed is the terminal error of a session that this client ended itself (Close or Abort).
var ErrClosed = errors.New("testclient: session closed by the client")

// ErrBrokerProtocol marks a session the client ended because the broker broke the wire contract
// (a text WebSocket message, a malformed datagram). A reference client reports that loudly.
var ErrBrokerProtocol = errors.New("testclient: broker violated the protocol")

// SessionError says why Dial was refused or why an established session ended on the broker's
// side (or the network's).
//
// errors.As(err, &be) finds the BROKER_ERROR that immediately preceded the end, with be either a
// *protocol.BrokerError or a protocol.BrokerError; CloseCode(err) returns the close code.
type SessionError struct {
	// Terminal is the terminal id of the session.
	Terminal uint32
	// Phase is where it ended: "dial", "hello", "authentication" or "session".
	Phase string
	// Code is the WebSocket close status the broker sent, -1 when the connection ended without
	// one (network error, TCP reset).
	Code int
	// Reason is the WebSocket close reason, if any.
	Reason string
	// CloseReceived reports that the broker sent a CLOSE datagram before closing.
	CloseReceived bool
	// BrokerError is the BROKER_ERROR received right before the end (no other datagram in
	// between, CLOSE aside), nil if none.
	BrokerError *protocol.BrokerError
	// Err is the underlying error, usually a websocket.CloseError.
	Err error
}

func newSessionError(terminal uint32, phase string, err error, closeReceived bool, be *protocol.BrokerError) *SessionError {
	e := &SessionError{Terminal: terminal, Phase: phase, Code: -1, CloseReceived: closeReceived, BrokerError: be, Err: err}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		e.Code = int(ce.Code)
		e.Reason = ce.Reason
	}
	return e
}

func (e *SessionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "testclient: terminal %d: ", e.Terminal)
	if e.Phase == "session" {
		b.WriteString("session ended")
	} else {
		fmt.Fprintf(&b, "%s refused", e.Phase)
	}
	if e.Code >= 0 {
		fmt.Fprintf(&b, ": close %d", e.Code)
		if e.Reason != "" {
			fmt.Fprintf(&b, " %q", e.Reason)
		}
	}
	if e.CloseReceived {
		b.WriteString(" after CLOSE")
	}
	if e.BrokerError != nil {
		fmt.Fprintf(&b, ": %v", *e.BrokerError)
	}
	if e.Code < 0 && e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the underlying error and the broker error, so that errors.Is/As see both.
func (e *SessionError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.BrokerError != nil {
		errs = append(errs, e.BrokerError)
	}
	return errs
}

// As lets errors.As fill a protocol.BrokerError value as well as a *protocol.BrokerError.
func (e *SessionError) As(target any) bool {
	if t, ok := target.(*protocol.BrokerError); ok && e.BrokerError != nil {
		*t = *e.BrokerError
		return true
	}
	return false
}

// CloseCode returns the WebSocket close code carried by err (a *SessionError or any error
// wrapping a websocket.CloseError), or -1 if there is none.
func CloseCode(err error) int {
	var se *SessionError
	if errors.As(err, &se) {
		return se.Code
	}
	return int(websocket.CloseStatus(err))
}

// UnexpectedError is returned by RecvText, RecvStored (and Subscribe, Unsubscribe, Attach, Idle,
// Detach) when the next datagram is not the one asked for. Got is that datagram; when it is a
// BROKER_ERROR, errors.As finds it as a protocol.BrokerError too.
type UnexpectedError struct {
	Want protocol.Type
	// WantStored is set by RecvStored, which wants a stored delivery of any type; Want is then
	// unused.
	WantStored bool
	Got        protocol.Datagram
}

func (e *UnexpectedError) Error() string {
	want := e.Want.String()
	if e.WantStored {
		want = "a stored delivery"
	}
	if be, err := protocol.DecodeBrokerError(e.Got.Data); e.Got.Type == protocol.TypeBrokerError && err == nil {
		return fmt.Sprintf("testclient: want %s, got %v", want, be)
	}
	return fmt.Sprintf("testclient: want %s, got %s", want, e.Got)
}

// As lets errors.As extract the broker error when Got is a BROKER_ERROR.
func (e *UnexpectedError) As(target any) bool {
	if e.Got.Type != protocol.TypeBrokerError {
		return false
	}
	be, err := protocol.DecodeBrokerError(e.Got.Data)
	if err != nil {
		return false
	}
	switch t := target.(type) {
	case *protocol.BrokerError:
		*t = be
	case **protocol.BrokerError:
		*t = &be
	default:
		return false
	}
	return true
}
