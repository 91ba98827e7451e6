// Package protocol is the Rewind datagram codec spoken between terminals and the broker.
//
// A Rewind datagram is an 18-byte little-endian header followed by up to 65535 bytes of data.
// Over WebSocket every binary message carries exactly one datagram.
//
//	offset size field
//	0      8    sign "REWIND01" (no NUL)
//	8      2    type
//	10     2    flags (RealTime1=1, RealTime2=2, Buffering=4)
//	12     4    number (sender's sequence, or outbox sequence with Buffering)
//	16     2    length of data
//	18     n    data
//
// # Protocol flow
//
//	terminal                                  broker
//	   | -- KEEP_ALIVE(VersionData{id,0x21}) -> |   hello
//	   | <- CHALLENGE(16 random bytes) -------- |
//	   | -- AUTHENTICATION(SHA-256(c‖pw)) ----> |
//	   | <- KEEP_ALIVE (empty) ---------------- |   active; or BROKER_ERROR 401 + close 4401
//	   | -- KEEP_ALIVE every 5 s -------------> |
//	   | <- KEEP_ALIVE (echo) ----------------- |   15 s of silence: CLOSE + close 4408
//	   | -- TERMINAL_ATTACH(url token | map) -> |   push channel (later)
//	   | <- TERMINAL_ATTACH (empty) ----------- |
//	   | -- MESSAGE_TEXT ---------------------> |   routed to a terminal, user or talkgroup
//	   | <- MESSAGE_TEXT ---------------------- |
//	   | -- MESSAGE_STATUS -------------------> |   routed back to the text's sender
//	   | <- MESSAGE_TEXT (flags Buffering) ---- |   stored delivery, number = outbox sequence
//	   | -- DELIVERY_ACK(u32 seq) ------------> |   cumulative
//	   | -- TERMINAL_IDLE --------------------> |   broker stores and wakes from now on
//	   | <- REDIRECTION(AF_UNSPEC) ------------ |   drain: reconnect after a short random delay
//	   | -- CLOSE ----------------------------> |   either side ends the session (close 1000)
//
// Decoding never allocates on behalf of a length read from the wire: every decoded slice or
// string is bounded by, and checked against, the size of the message that carried it. Header
// parsing allocates nothing. Payload decoders copy what they keep (strings) or alias the
// message (byte slices, documented per field).
package protocol

// Sign is the 8-byte signature that starts every datagram.
const Sign = "REWIND01"

const (
	// HeaderSize is the size of the fixed datagram header.
	HeaderSize = 18
	// MaxDataSize is the largest data a datagram can carry (u16 length).
	MaxDataSize = 0xffff
	// MaxDatagramSize is the largest datagram the wire format allows.
	MaxDatagramSize = HeaderSize + MaxDataSize
)

// Type is a datagram type. Values are Rewind's header values.
type Type uint16

// Datagram types. Data layouts are little-endian and packed.
const (
	// TypeKeepAlive: terminal hello (VersionData) or keep-alive; broker echo is empty.
	TypeKeepAlive Type = 0x0000
	// TypeClose: empty; ends the session.
	TypeClose Type = 0x0001
	// TypeChallenge: 16 random bytes, broker → terminal.
	TypeChallenge Type = 0x0002
	// TypeAuthentication: 32 bytes SHA-256(challenge ‖ password), terminal → broker.
	TypeAuthentication Type = 0x0003
	// TypeRedirection: Redirection (20 bytes), broker → terminal.
	TypeRedirection Type = 0x0008
	// TypeReport: free-form report, accepted and ignored.
	TypeReport Type = 0x0100
	// TypeSubscription: Subscription (8 bytes); the broker echoes it on success.
	TypeSubscription Type = 0x0901
	// TypeCancelling: Subscription (8 bytes) cancels one, empty cancels all; echoed.
	TypeCancelling Type = 0x0902
	// TypeTerminalIdle: empty; answered with an empty TERMINAL_IDLE.
	TypeTerminalIdle Type = 0x0a00
	// TypeTerminalAttach: legacy "URL SP token" (UTF-8) or a MessagePack map.
	TypeTerminalAttach Type = 0x0a02
	// TypeTerminalDetach: empty.
	TypeTerminalDetach Type = 0x0a03
	// TypeTerminalWakeup: Wakeup (u32 pending), or empty from a terminal.
	TypeTerminalWakeup Type = 0x0a04
	// TypeMessageText: TextMessage (16 + n bytes).
	TypeMessageText Type = 0x0a10
	// TypeMessageStatus: TextStatus (13 bytes).
	TypeMessageStatus Type = 0x0a11
	// TypeLocationReport: LocationReport (10 + n bytes).
	TypeLocationReport Type = 0x0a20
	// TypeLocationRequest: LocationRequest (12 bytes).
	TypeLocationRequest Type = 0x0a21

	// TypeDeliveryAck (broker extension): DeliveryAck (u32 sequence), terminal → broker.
	TypeDeliveryAck Type = 0x0f00
	// TypeBrokerError (broker extension): BrokerError (u16 code, u16 type, UTF-8 reason).
	TypeBrokerError Type = 0x0f01
)

var typeNames = map[Type]string{
	TypeKeepAlive:       "KEEP_ALIVE",
	TypeClose:           "CLOSE",
	TypeChallenge:       "CHALLENGE",
	TypeAuthentication:  "AUTHENTICATION",
	TypeRedirection:     "REDIRECTION",
	TypeReport:          "REPORT",
	TypeSubscription:    "SUBSCRIPTION",
	TypeCancelling:      "CANCELLING",
	TypeTerminalIdle:    "TERMINAL_IDLE",
	TypeTerminalAttach:  "TERMINAL_ATTACH",
	TypeTerminalDetach:  "TERMINAL_DETACH",
	TypeTerminalWakeup:  "TERMINAL_WAKEUP",
	TypeMessageText:     "MESSAGE_TEXT",
	TypeMessageStatus:   "MESSAGE_STATUS",
	TypeLocationReport:  "LOCATION_REPORT",
	TypeLocationRequest: "LOCATION_REQUEST",
	TypeDeliveryAck:     "DELIVERY_ACK",
	TypeBrokerError:     "BROKER_ERROR",
}

// String returns the Rewind name of t, or "0xNNNN" for types this package does not know.
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	const hex = "0123456789abcdef"
	return string([]byte{'0', 'x', hex[t>>12&0xf], hex[t>>8&0xf], hex[t>>4&0xf], hex[t&0xf]})
}

// Known reports whether t is a type this package names. Unknown types are legal on the wire:
// receivers count and ignore them.
func (t Type) Known() bool {
	_, ok := typeNames[t]
	return ok
}

// Flags is the datagram flags field.
type Flags uint16

// Datagram flags.
const (
	FlagRealTime1 Flags = 1
	FlagRealTime2 Flags = 2
	// FlagBuffering marks a stored (outbox) delivery; Number is then the outbox sequence.
	FlagBuffering Flags = 4
)

// Service is the RewindVersionData service byte a terminal sends in its hello.
const ServiceTerminal uint8 = 0x21

// Text message options.
const (
	OptionPrivate uint16 = 0
	OptionGroup   uint16 = 128
)

// Subscription session types.
const (
	SubscriptionPrivate uint32 = 5
	SubscriptionGroup   uint32 = 7
)

// ChallengeSize is the size of CHALLENGE data.
const ChallengeSize = 16
