package broker

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/rewind-broker/rewind/protocol"
)

// Defaults, each with the reason for its value.
const (
	// DefaultMaxDatagram is the largest datagram accepted from a terminal: texts, statuses and
	// location reports are small, so 8 KiB of data leaves room while bounding what one peer can
	// make the broker hold (PROTOCOL.md §1 allows up to 64 KiB + 18).
	DefaultMaxDatagram = 8192 + protocol.HeaderSize
	// DefaultHandshakeTimeout bounds hello → challenge → authentication: a real terminal answers
	// in one round trip; a socket that says nothing must not hold a slot.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultKeepAliveTimeout is three missed 5 s keep-alive intervals (PROTOCOL.md §3).
	DefaultKeepAliveTimeout = 15 * time.Second
	// DefaultWriteTimeout bounds one socket write; a peer that does not drain its receive window
	// for this long is a slow consumer.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultSendQueue is how many datagrams may wait for one terminal's writer. A terminal
	// that falls this far behind is closed (CloseSlowConsumer) instead of slowing its senders.
	DefaultSendQueue = 256
	// DefaultMaxMalformed is the number of malformed datagrams in a row that ends a session
	// (PROTOCOL.md §6).
	DefaultMaxMalformed = 3
	// DefaultAuthFailures failed authentications per terminal id or per remote address within
	// DefaultAuthWindow lock that id or address out (close 4429) until the window passes.
	DefaultAuthFailures = 5
	// DefaultAuthWindow: see DefaultAuthFailures.
	DefaultAuthWindow = 5 * time.Minute
	// DefaultMaxSubscriptions bounds talkgroups per session; group fan-out cost grows with it.
	DefaultMaxSubscriptions = 64
	// DefaultDrainTimeout bounds graceful shutdown: sessions get REDIRECTION and a close frame;
	// whatever has not closed by then is dropped.
	DefaultDrainTimeout = 5 * time.Second
	// DefaultStoreTimeout bounds one registry lookup on a session's path.
	DefaultStoreTimeout = 5 * time.Second
)

// Config configures a Server. The zero value of every field means its default.
type Config struct {
	// MaxDatagram is the largest datagram (header included) accepted from a terminal.
	// Zero means DefaultMaxDatagram; at most protocol.MaxDatagramSize.
	MaxDatagram int
	// HandshakeTimeout: zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// KeepAliveTimeout: zero means DefaultKeepAliveTimeout.
	KeepAliveTimeout time.Duration
	// WriteTimeout: zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// SendQueue: zero means DefaultSendQueue.
	SendQueue int
	// MaxMalformed: zero means DefaultMaxMalformed.
	MaxMalformed int
	// AuthFailures and AuthWindow: zero means their defaults.
	AuthFailures int
	AuthWindow   time.Duration
	// MaxSubscriptions: zero means DefaultMaxSubscriptions.
	MaxSubscriptions int
	// DrainTimeout: zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// OriginPatterns are extra WebSocket Origin host patterns accepted (terminal apps are native
	// and send no Origin; browsers must be listed explicitly). Empty means same-origin only.
	OriginPatterns []string
	// Push enables store-and-forward and wake-ups. Nil: private datagrams are only delivered
	// to live sessions, and a registered terminal without one gets BROKER_ERROR 404.
	Push *PushConfig
	// EventBuffer bounds the event stream's ring by count: zero means DefaultEventBuffer.
	EventBuffer int
	// EventRetention bounds the ring by age: zero means DefaultEventRetention.
	EventRetention time.Duration
	// EventSubscriberBuffer is how many events may wait for one SSE subscriber before it is
	// disconnected: zero means DefaultEventSubscriberBuffer.
	EventSubscriberBuffer int
	// EventHeartbeat is the SSE heartbeat interval: zero means DefaultEventHeartbeat.
	EventHeartbeat time.Duration
	// WokenWindow: a terminal that authenticates this soon after a push is reported woken by
	// it. Zero means DefaultWokenWindow.
	WokenWindow time.Duration
	// PushAuditRetention is how long push audit records are kept: zero means
	// DefaultPushAuditRetention.
	PushAuditRetention time.Duration
	// Clock drives every timer of the broker. Nil means the system clock; tests inject one.
	Clock Clock
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	orDefault(&c.MaxDatagram, DefaultMaxDatagram)
	orDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	orDefault(&c.KeepAliveTimeout, DefaultKeepAliveTimeout)
	orDefault(&c.WriteTimeout, DefaultWriteTimeout)
	orDefault(&c.SendQueue, DefaultSendQueue)
	orDefault(&c.MaxMalformed, DefaultMaxMalformed)
	orDefault(&c.AuthFailures, DefaultAuthFailures)
	orDefault(&c.AuthWindow, DefaultAuthWindow)
	orDefault(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	orDefault(&c.DrainTimeout, DefaultDrainTimeout)
	orDefault(&c.EventBuffer, DefaultEventBuffer)
	orDefault(&c.EventRetention, DefaultEventRetention)
	orDefault(&c.EventSubscriberBuffer, DefaultEventSubscriberBuffer)
	orDefault(&c.EventHeartbeat, DefaultEventHeartbeat)
	orDefault(&c.WokenWindow, DefaultWokenWindow)
	orDefault(&c.PushAuditRetention, DefaultPushAuditRetention)
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.MaxDatagram < protocol.HeaderSize+64 || c.MaxDatagram > protocol.MaxDatagramSize:
		return c, fmt.Errorf("broker: max datagram %d out of range [%d, %d]", c.MaxDatagram, protocol.HeaderSize+64, protocol.MaxDatagramSize)
	case c.HandshakeTimeout < 0 || c.KeepAliveTimeout < 0 || c.WriteTimeout < 0 || c.AuthWindow < 0 || c.DrainTimeout < 0:
		return c, fmt.Errorf("broker: negative timeout in config")
	case c.SendQueue < 1 || c.MaxMalformed < 1 || c.AuthFailures < 1 || c.MaxSubscriptions < 1:
		return c, fmt.Errorf("broker: send queue, malformed limit, auth failures and subscriptions must be positive")
	case c.EventBuffer < 1 || c.EventSubscriberBuffer < 1 || c.EventRetention < 0 || c.EventHeartbeat < 0 || c.WokenWindow < 0 || c.PushAuditRetention < 0:
		return c, fmt.Errorf("broker: event buffers must be positive, event and audit durations not negative")
	}
	return c, nil
}

// orDefault sets *field to def when it holds its zero value: every config field's zero value
// means "the default".
func orDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}
