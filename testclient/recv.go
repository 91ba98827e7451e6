package testclient

import (
	"context"
	"fmt"

	"github.com/coder/websocket"

	"github.com/rewind-broker/rewind/protocol"
)

// waiter is a caller waiting for one datagram the reader would otherwise queue (a subscription
// echo) or swallow (a keep-alive echo). match runs on the reader goroutine with c.mu held.
type waiter struct {
	match func(protocol.Datagram) bool
	ch    chan protocol.Datagram // buffered 1
}

func (c *Client) addWaiter(match func(protocol.Datagram) bool) *waiter {
	w := &waiter{match: match, ch: make(chan protocol.Datagram, 1)}
	c.mu.Lock()
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	return w
}

func (c *Client) removeWaiter(w *waiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return
		}
	}
}

// wait blocks until the reader hands w its datagram, ctx ends or the session ends.
func (c *Client) wait(ctx context.Context, w *waiter) (protocol.Datagram, error) {
	defer c.removeWaiter(w)
	select {
	case d := <-w.ch:
		return d, nil
	case <-ctx.Done():
		return protocol.Datagram{}, fmt.Errorf("testclient: terminal %d: %w", c.cfg.ID, ctx.Err())
	case <-c.done:
		select {
		case d := <-w.ch:
			return d, nil
		default:
			return protocol.Datagram{}, c.err
		}
	}
}

// readLoop is the only reader of the socket. It runs until the connection ends or the client
// closes, then records the reason.
func (c *Client) readLoop() {
	defer c.wg.Done()
	var be *protocol.BrokerError // BROKER_ERROR with nothing after it yet
	closeReceived := false
	for {
		typ, msg, err := c.conn.Read(c.life)
		if err != nil {
			c.finish(newSessionError(c.cfg.ID, "session", err, closeReceived, be))
			return
		}
		if typ != websocket.MessageBinary {
			c.finish(fmt.Errorf("%w: a text WebSocket message", ErrBrokerProtocol))
			return
		}
		d, err := protocol.Decode(msg)
		if err != nil {
			c.finish(fmt.Errorf("%w: %w", ErrBrokerProtocol, err))
			return
		}
		switch d.Type {
		case protocol.TypeClose:
			closeReceived = true
			continue
		case protocol.TypeBrokerError:
			if e, err := protocol.DecodeBrokerError(d.Data); err == nil {
				be = &e
			}
		default:
			be = nil
		}
		if !c.dispatch(d) {
			c.finish(nil) // closing: finish replaces nil with ErrClosed
			return
		}
	}
}

// dispatch hands d to a waiter or to the receive queue and asks the writer loop for the
// automatic answers. It returns false when the client closed while the queue was full.
func (c *Client) dispatch(d protocol.Datagram) bool {
	if d.Type == protocol.TypeKeepAlive && len(d.Data) == 0 {
		c.mu.Lock()
		c.kaEchoed++
		kept := c.waiters[:0]
		for _, w := range c.waiters {
			if w.match(d) {
				w.ch <- d
			} else {
				kept = append(kept, w)
			}
		}
		c.waiters = kept
		c.mu.Unlock()
		return true
	}

	c.mu.Lock()
	for i, w := range c.waiters {
		if w.match(d) {
			w.ch <- d
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			c.mu.Unlock()
			return true
		}
	}
	c.mu.Unlock()

	select {
	case c.queue <- d:
	case <-c.life.Done():
		return false
	}

	if c.cfg.AutoStatus && d.Type == protocol.TypeMessageText {
		if m, err := protocol.DecodeTextMessage(d.Data); err == nil && m.Option == protocol.OptionPrivate {
			select {
			case c.statuses <- protocol.TextStatus{Source: c.cfg.ID, Destination: m.Source, Status: protocol.StatusDelivered}:
			case <-c.life.Done():
				return false
			}
		} else if err != nil {
			c.log.Warn("cannot answer a text that does not decode", "err", err)
		}
	}
	if c.cfg.AutoAck && d.Flags&protocol.FlagBuffering != 0 {
		c.ackMu.Lock()
		c.ackHigh = max(c.ackHigh, d.Number) // cumulative: never acknowledge backwards
		c.ackPending = true
		c.ackMu.Unlock()
		select {
		case c.ackSignal <- struct{}{}:
		default: // a signal is already pending; the loop will read the newest ackHigh
		}
	}
	return true
}

// Recv returns the next datagram from the broker. Keep-alive echoes are not returned, nor CLOSE
// (it is reported by the terminal error), nor the echoes Subscribe, Unsubscribe and KeepAliveNow
// wait for. Datagrams are returned in arrival order; their Data is the caller's to keep.
//
// Once the connection has ended and the queue is drained, Recv returns the session's terminal
// error (see Err), e.g. a *SessionError with CloseCode 4409 after replacement.
func (c *Client) Recv(ctx context.Context) (protocol.Datagram, error) {
	select {
	case d := <-c.queue:
		return d, nil
	case <-ctx.Done():
		return protocol.Datagram{}, fmt.Errorf("testclient: terminal %d: %w", c.cfg.ID, ctx.Err())
	case <-c.done:
		select {
		case d := <-c.queue:
			return d, nil
		default:
			return protocol.Datagram{}, c.err
		}
	}
}

// RecvText returns the next datagram decoded as a text message. When the next datagram is not a
// MESSAGE_TEXT it is consumed and returned with an *UnexpectedError naming its type (errors.As
// finds the protocol.BrokerError when it is a BROKER_ERROR): tests want to know.
func (c *Client) RecvText(ctx context.Context) (protocol.TextMessage, protocol.Datagram, error) {
	d, err := c.Recv(ctx)
	if err != nil {
		return protocol.TextMessage{}, d, err
	}
	if d.Type != protocol.TypeMessageText {
		return protocol.TextMessage{}, d, &UnexpectedError{Want: protocol.TypeMessageText, Got: d}
	}
	m, err := protocol.DecodeTextMessage(d.Data)
	if err != nil {
		return protocol.TextMessage{}, d, fmt.Errorf("%w: %w", ErrBrokerProtocol, err)
	}
	return m, d, nil
}

// TryRecv returns the next queued datagram without waiting; ok is false when none is queued.
// After KeepAliveNow (a barrier) it tells a test that nothing else arrived before the echo.
func (c *Client) TryRecv() (d protocol.Datagram, ok bool) {
	select {
	case d = <-c.queue:
		return d, true
	default:
		return protocol.Datagram{}, false
	}
}
