package broker

import (
	"github.com/coder/websocket"
	"github.com/rewind-broker/rewind/protocol"
)

// Disconnect is why a session ended: the one place where a close reason, its WebSocket close
// code, its metric label and the datagram sent before closing are defined.
//
// Codes 1000 and 1012 tell a terminal to reconnect (1012 after a short random delay); 4408 and
// 4503 too (the terminal may have been asleep or slow). 4400, 4401, 4403 and 4413 mean the
// terminal's own input is wrong: reconnecting unchanged will fail again. 4429 means wait (the
// lockout lasts the broker's auth window). 4409 means another session took over: do not
// reconnect automatically, or two copies of the app will fight.
type Disconnect struct {
	Code   websocket.StatusCode
	Reason string // metric label and close-frame text: short, fixed, never a secret
	// Final is the datagram written before the close frame, if any.
	final func() protocol.Datagram
}

func closeDatagram() protocol.Datagram { return protocol.Datagram{Type: protocol.TypeClose} }

func brokerError(code uint16, offending protocol.Type, reason string) func() protocol.Datagram {
	return func() protocol.Datagram {
		return protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{Code: code, Offending: offending, Reason: reason}.Encode()}
	}
}

// Close reasons.
var (
	CloseNormal            = Disconnect{Code: websocket.StatusNormalClosure, Reason: "client close"}
	CloseKeepAlive         = Disconnect{Code: 4408, Reason: "keep-alive timeout", final: closeDatagram}
	CloseHandshake         = Disconnect{Code: 4408, Reason: "handshake timeout", final: closeDatagram}
	CloseReplaced          = Disconnect{Code: 4409, Reason: "replaced", final: closeDatagram}
	CloseAuthFailed        = Disconnect{Code: 4401, Reason: "authentication failed", final: brokerError(protocol.CodeUnauthorized, protocol.TypeAuthentication, "authentication failed")}
	CloseAuthLimited       = Disconnect{Code: 4429, Reason: "too many authentication failures", final: brokerError(protocol.CodeRateLimited, protocol.TypeAuthentication, "too many authentication failures; try again later")}
	CloseMalformed         = Disconnect{Code: 4400, Reason: "malformed datagrams", final: closeDatagram}
	CloseTooLarge          = Disconnect{Code: 4413, Reason: "datagram too large"}
	CloseSlowConsumer      = Disconnect{Code: 4503, Reason: "slow consumer"}
	CloseDrain             = Disconnect{Code: websocket.StatusServiceRestart, Reason: "broker restarting", final: redirection}
	CloseDeleted           = Disconnect{Code: 4403, Reason: "terminal deleted", final: closeDatagram}
	CloseKicked            = Disconnect{Code: 4403, Reason: "kicked by operator", final: closeDatagram}
	CloseProtocol          = Disconnect{Code: 4400, Reason: "protocol violation"}
	CloseReadError         = Disconnect{Code: websocket.StatusAbnormalClosure, Reason: "connection lost"}
	CloseStoreUnavail      = Disconnect{Code: 4503, Reason: "registry unavailable"}
	closeReasonsForMetrics = []Disconnect{CloseNormal, CloseKeepAlive, CloseHandshake, CloseReplaced, CloseAuthFailed, CloseAuthLimited,
		CloseMalformed, CloseTooLarge, CloseSlowConsumer, CloseDrain, CloseDeleted, CloseKicked, CloseProtocol, CloseReadError, CloseStoreUnavail}
)

func redirection() protocol.Datagram {
	return protocol.Datagram{Type: protocol.TypeRedirection, Data: protocol.Redirection{Family: protocol.AFUnspec}.Encode()}
}

// drops reports whether queued datagrams are abandoned rather than written before closing:
// the peer is not reading, or the connection is already gone.
func (d Disconnect) drops() bool {
	return d.Reason == CloseSlowConsumer.Reason || d.Reason == CloseReadError.Reason
}
