package testclient

import (
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Defaults, each with the reason it has this value.
const (
	// DefaultDescription is the VersionData description sent in the hello.
	DefaultDescription = "rewind testclient"
	// DefaultKeepAlive is the keep-alive interval PROTOCOL.md §3 asks terminals for; the broker
	// drops a session after three missed intervals.
	DefaultKeepAlive = 5 * time.Second
	// DefaultRecvQueue bounds the receive queue. Big enough that a test reading datagrams one by
	// one never stalls the reader, small enough that a consumer which stops reading is felt by
	// the broker (backpressure) instead of growing memory here.
	DefaultRecvQueue = 256
	// HandshakeTimeout bounds Dial's hello/challenge/authentication exchange when the caller's
	// context allows longer: a broker that does not answer within it is broken, not slow.
	HandshakeTimeout = 10 * time.Second
	// refusalCloseWait is how long Dial waits for the WebSocket close that follows a
	// BROKER_ERROR during the handshake, so that CloseCode can report it.
	refusalCloseWait = 2 * time.Second
	// internalWriteTimeout bounds the writes the client makes on its own (keep-alives,
	// automatic acks and statuses, the CLOSE datagram sent by Close). A broker that does not take
	// a small datagram within it has stopped reading.
	internalWriteTimeout = 5 * time.Second
)

// Config describes one terminal. The zero value of every optional field is documented; Dial
// validates the rest.
type Config struct {
	// URL is the broker's WebSocket endpoint, e.g. ws://127.0.0.1:4000/rewind. Required.
	URL string
	// ID is the terminal id sent in the hello (VersionData.Number).
	ID uint32
	// Password is the terminal's secret; it never leaves the process except as
	// SHA-256(challenge ‖ password).
	Password string
	// Description is the hello's free text; empty means DefaultDescription.
	Description string
	// KeepAlive is the interval of the keep-alive loop. Zero means DefaultKeepAlive; a negative
	// value disables keep-alives entirely (tests of the broker's keep-alive expiry).
	// The loop pauses after the terminal sends TERMINAL_IDLE (an idle terminal is silent; a
	// KEEP_ALIVE would make it active again) and resumes on KeepAliveNow.
	KeepAlive time.Duration
	// AutoStatus, when set, answers every received private MESSAGE_TEXT with a MESSAGE_STATUS
	// StatusDelivered to its sender, once the text is in the receive queue. Statuses are written
	// by the writer loop from a queue as long as RecvQueue; if it fills, the reader waits.
	AutoStatus bool
	// AutoAck, when set, acknowledges stored deliveries (flag Buffering) with a cumulative
	// DELIVERY_ACK once they are in the receive queue. Without it, call Ack.
	AutoAck bool
	// RecvQueue bounds the receive queue; zero means DefaultRecvQueue. When the queue is full the
	// reader stops reading the socket until Recv makes room: the broker's writes then back up, as
	// they would for a slow phone. That is deliberate (slow-consumer tests) but it also means a
	// full queue delays Subscribe's echo and KeepAliveNow's echo; read what you receive.
	RecvQueue int
	// Wakeup, when set, makes Dial send an empty TERMINAL_WAKEUP right after the handshake,
	// before the client's goroutines start: the first datagram of a push-triggered reconnect,
	// ahead of any automatic DELIVERY_ACK for the stored deliveries the broker replays at once.
	Wakeup bool
	// HTTPClient, when set, is used for the WebSocket handshake (custom dialing, e.g. spreading
	// source addresses in load tests). Nil means http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives one line per notable event, with the terminal id attached. Nil discards.
	Logger *slog.Logger
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.URL == "" {
		return cfg, errors.New("testclient: Config.URL is required")
	}
	if cfg.Description == "" {
		cfg.Description = DefaultDescription
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.RecvQueue <= 0 {
		cfg.RecvQueue = DefaultRecvQueue
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With("terminal", cfg.ID)
	return cfg, nil
}
