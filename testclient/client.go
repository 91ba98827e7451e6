package testclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/rewind-broker/rewind/protocol"
)

// Client is one authenticated terminal session. Its methods are safe for concurrent use.
type Client struct {
	// Static after Dial.
	cfg  Config
	conn *websocket.Conn
	log  *slog.Logger

	// life is cancelled when the session ends or the client closes; it bounds every goroutine.
	life   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Owned by the reader goroutine until done is closed; read by anyone after that.
	queue chan protocol.Datagram
	done  chan struct{}
	err   error // set before done is closed

	// Guarded by writeMu: the terminal's sequence counter and the keep-alive count, both
	// advanced in the order datagrams reach the wire.
	writeMu sync.Mutex
	seq     uint32
	kaSent  uint64
	idle    bool // TERMINAL_IDLE sent and no KEEP_ALIVE since: the keep-alive loop pauses

	// Guarded by mu: reader-side bookkeeping shared with waiters.
	mu       sync.Mutex
	kaEchoed uint64
	waiters  []*waiter

	// Reader → writer loop. ackHigh is the highest Buffering sequence handed to the queue
	// (ackPending says there is one to send); statuses are texts to answer.
	ackMu      sync.Mutex
	ackHigh    uint32
	ackPending bool
	ackSignal  chan struct{}
	statuses   chan protocol.TextStatus

	closing   atomic.Bool // Close or Abort started
	closeOnce sync.Once
}

// Dial connects to cfg.URL and performs the session handshake of PROTOCOL.md §3: hello
// (KEEP_ALIVE with VersionData), CHALLENGE, AUTHENTICATION, and the broker's empty KEEP_ALIVE.
// The handshake is bounded by ctx and by HandshakeTimeout. With cfg.Wakeup, an empty
// TERMINAL_WAKEUP follows it before anything else.
//
// On refusal the error is a *SessionError: errors.As finds the BROKER_ERROR the broker
// sent, if any (e.g. code 401), and CloseCode returns the WebSocket close code (4401, 4429, ...).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()

	conn, _, err := websocket.Dial(hctx, cfg.URL, &websocket.DialOptions{HTTPClient: cfg.HTTPClient})
	if err != nil {
		return nil, newSessionError(cfg.ID, "dial", err, false, nil)
	}
	conn.SetReadLimit(protocol.MaxDatagramSize)

	c := &Client{
		cfg:       cfg,
		conn:      conn,
		log:       cfg.Logger,
		queue:     make(chan protocol.Datagram, cfg.RecvQueue),
		done:      make(chan struct{}),
		ackSignal: make(chan struct{}, 1),
		statuses:  make(chan protocol.TextStatus, cfg.RecvQueue),
	}
	if err := c.handshake(hctx); err != nil {
		conn.CloseNow()
		var se *SessionError
		if errors.As(err, &se) {
			return nil, err // names the terminal already
		}
		return nil, fmt.Errorf("testclient: terminal %d: %w", cfg.ID, err)
	}
	c.log.Debug("session authenticated", "url", cfg.URL)
	if cfg.Wakeup {
		if err := c.write(hctx, protocol.Datagram{Type: protocol.TypeTerminalWakeup}); err != nil {
			conn.CloseNow()
			return nil, fmt.Errorf("testclient: terminal %d: send %s: %w", cfg.ID, protocol.TypeTerminalWakeup, err)
		}
	}

	c.life, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c, nil
}

// handshake runs hello → challenge → authentication → welcome on the fresh connection.
func (c *Client) handshake(ctx context.Context) error {
	hello, err := protocol.VersionData{Number: c.cfg.ID, Service: protocol.ServiceTerminal, Description: c.cfg.Description}.Encode()
	if err != nil {
		return err
	}
	if err := c.write(ctx, protocol.Datagram{Type: protocol.TypeKeepAlive, Data: hello}); err != nil {
		return newSessionError(c.cfg.ID, "hello", err, false, nil)
	}
	challenge, err := c.handshakeRead(ctx, "hello", protocol.TypeChallenge)
	if err != nil {
		return err
	}
	if len(challenge.Data) != protocol.ChallengeSize {
		c.log.Warn("challenge of unexpected size", "bytes", len(challenge.Data))
	}
	digest := protocol.AuthDigest(challenge.Data, c.cfg.Password)
	if err := c.write(ctx, protocol.Datagram{Type: protocol.TypeAuthentication, Data: digest[:]}); err != nil {
		return newSessionError(c.cfg.ID, "authentication", err, false, nil)
	}
	_, err = c.handshakeRead(ctx, "authentication", protocol.TypeKeepAlive)
	return err
}

// handshakeRead reads until a datagram of type want arrives (an empty one for KEEP_ALIVE).
// A BROKER_ERROR is remembered and the close that should follow it awaited briefly; unknown
// types are ignored (forward compatibility); any other known type is an error.
func (c *Client) handshakeRead(ctx context.Context, phase string, want protocol.Type) (protocol.Datagram, error) {
	var be *protocol.BrokerError
	closeReceived, shortened := false, false
	for {
		_, msg, err := c.conn.Read(ctx)
		if err != nil {
			return protocol.Datagram{}, newSessionError(c.cfg.ID, phase, err, closeReceived, be)
		}
		d, err := protocol.Decode(msg)
		if err != nil {
			return protocol.Datagram{}, fmt.Errorf("%w: during %s: %w", ErrBrokerProtocol, phase, err)
		}
		switch {
		case d.Type == want && (want != protocol.TypeKeepAlive || len(d.Data) == 0):
			return d, nil
		case d.Type == protocol.TypeBrokerError:
			e, err := protocol.DecodeBrokerError(d.Data)
			if err != nil {
				return protocol.Datagram{}, fmt.Errorf("%w: during %s: %w", ErrBrokerProtocol, phase, err)
			}
			be = &e
			if !shortened {
				// The close should follow at once; do not wait the whole handshake for it.
				shortened = true
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, refusalCloseWait)
				defer cancel()
			}
		case d.Type == protocol.TypeClose:
			closeReceived = true
		case !d.Type.Known():
			c.log.Debug("ignoring unknown datagram type during handshake", "type", d.Type)
		default:
			return protocol.Datagram{}, fmt.Errorf("%w: during %s: want %s, got %s", ErrBrokerProtocol, phase, want, d)
		}
	}
}

// ID returns the terminal id.
func (c *Client) ID() uint32 { return c.cfg.ID }

// Done is closed when the connection has ended, whoever ended it.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the session ended (see SessionError and ErrClosed), nil while it is running.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close ends the session politely: it sends CLOSE, then closes the WebSocket with 1000 (waiting
// briefly for the broker's close), and stops the client's goroutines. It is idempotent and safe
// to call after the broker ended the session. It returns an error only when the closing
// handshake itself failed.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		select {
		case <-c.done:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), internalWriteTimeout)
			_ = c.Send(ctx, protocol.Datagram{Type: protocol.TypeClose})
			cancel()
			err = c.conn.Close(websocket.StatusNormalClosure, "")
			if errors.Is(err, net.ErrClosed) || websocket.CloseStatus(err) != -1 {
				err = nil // the broker closed first, which is fine
			}
		}
		c.stop()
	})
	return err
}

// Abort drops the TCP connection without CLOSE and without a WebSocket close frame, like a phone
// that loses its network (the kernel still sends a FIN). It stops the client's goroutines and
// is idempotent; it does nothing after Close.
func (c *Client) Abort() {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.stop()
	})
}

func (c *Client) stop() {
	c.conn.CloseNow()
	c.cancel()
	c.wg.Wait()
}

// finish records why the session ended and releases everything waiting on it. Reader only.
func (c *Client) finish(err error) {
	if c.closing.Load() {
		err = ErrClosed
	}
	c.err = err
	close(c.done)
	c.cancel()
	if !c.closing.Load() { // Close and Abort release the connection themselves
		c.conn.CloseNow()
	}
	c.log.Debug("session ended", "err", err)
}
