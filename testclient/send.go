package testclient

import (
	"context"
	"fmt"

	"github.com/coder/websocket"

	"github.com/rewind-broker/rewind/protocol"
)

// Writes take the caller's context. Note that coder/websocket closes the connection when the
// context of a write in progress ends: a Send that times out ends the session.

// write numbers d with the terminal's counter and writes it, keeping counter order and wire
// order the same.
func (c *Client) write(ctx context.Context, d protocol.Datagram) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.writeLocked(ctx, d)
}

func (c *Client) writeLocked(ctx context.Context, d protocol.Datagram) error {
	d.Number = c.seq
	msg, err := d.Encode()
	if err != nil {
		return err
	}
	if err := c.conn.Write(ctx, websocket.MessageBinary, msg); err != nil {
		return err
	}
	c.seq++
	switch d.Type {
	case protocol.TypeKeepAlive:
		if c.life != nil { // the hello is not echoed
			c.kaSent++
		}
		c.idle = false
	case protocol.TypeTerminalIdle:
		c.idle = true
	}
	return nil
}

// Send writes d, setting its Number from the terminal's sequence counter (0 for the hello,
// then +1 per datagram sent). Sending TERMINAL_IDLE pauses the keep-alive loop and sending a
// KEEP_ALIVE resumes it, as a real terminal going to the background and back would.
//
// Writes are serialised: give ctx a deadline, since a write to a broker that stopped reading
// holds up every other write, Close's included. If ctx ends while the datagram is being
// written, coder/websocket closes the connection and the session ends.
func (c *Client) Send(ctx context.Context, d protocol.Datagram) error {
	if err := c.write(ctx, d); err != nil {
		return fmt.Errorf("testclient: terminal %d: send %s: %w", c.cfg.ID, d.Type, err)
	}
	return nil
}

// SendRaw writes msg as one binary WebSocket message, as is: no numbering, no validation
// (malformed-input tests). The sequence counter does not advance.
func (c *Client) SendRaw(ctx context.Context, msg []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.conn.Write(ctx, websocket.MessageBinary, msg); err != nil {
		return fmt.Errorf("testclient: terminal %d: send raw: %w", c.cfg.ID, err)
	}
	return nil
}

// SendText sends a private MESSAGE_TEXT to terminal or DMR user to.
func (c *Client) SendText(ctx context.Context, to uint32, text string) error {
	return c.sendText(ctx, to, protocol.OptionPrivate, text)
}

// SendGroupText sends a MESSAGE_TEXT to talkgroup (option group). Group texts are live traffic:
// never stored, delivered only to subscribed, connected terminals.
func (c *Client) SendGroupText(ctx context.Context, talkgroup uint32, text string) error {
	return c.sendText(ctx, talkgroup, protocol.OptionGroup, text)
}

func (c *Client) sendText(ctx context.Context, to uint32, option uint16, text string) error {
	data, err := protocol.TextMessage{Source: c.cfg.ID, Destination: to, Option: option, Text: text}.Encode()
	if err != nil {
		return fmt.Errorf("testclient: terminal %d: %w", c.cfg.ID, err)
	}
	return c.Send(ctx, protocol.Datagram{Type: protocol.TypeMessageText, Data: data})
}

// SendStatus sends MESSAGE_STATUS about a text received from terminal to (the text's sender).
func (c *Client) SendStatus(ctx context.Context, to uint32, status uint8) error {
	data := protocol.TextStatus{Source: c.cfg.ID, Destination: to, Status: status}.Encode()
	return c.Send(ctx, protocol.Datagram{Type: protocol.TypeMessageStatus, Data: data})
}

// Ack acknowledges every stored delivery up to and including seq (DELIVERY_ACK is cumulative).
func (c *Client) Ack(ctx context.Context, seq uint32) error {
	return c.Send(ctx, protocol.Datagram{Type: protocol.TypeDeliveryAck, Data: protocol.EncodeU32(seq)})
}

// Subscribe sends SUBSCRIPTION{group, talkgroup} and waits for the broker's echo. Datagrams that
// arrive meanwhile stay queued for Recv. A BROKER_ERROR about the subscription ends the wait
// with an *UnexpectedError from which errors.As extracts the protocol.BrokerError.
func (c *Client) Subscribe(ctx context.Context, talkgroup uint32) error {
	return c.subscription(ctx, protocol.TypeSubscription, talkgroup)
}

// Unsubscribe sends CANCELLING{group, talkgroup} and waits for the echo, like Subscribe.
func (c *Client) Unsubscribe(ctx context.Context, talkgroup uint32) error {
	return c.subscription(ctx, protocol.TypeCancelling, talkgroup)
}

func (c *Client) subscription(ctx context.Context, typ protocol.Type, talkgroup uint32) error {
	data := protocol.Subscription{Type: protocol.SubscriptionGroup, Number: talkgroup}.Encode()
	w := c.addWaiter(func(d protocol.Datagram) bool {
		switch d.Type {
		case typ:
			return string(d.Data) == string(data)
		case protocol.TypeBrokerError:
			be, err := protocol.DecodeBrokerError(d.Data)
			return err == nil && be.Offending == typ
		}
		return false
	})
	if err := c.Send(ctx, protocol.Datagram{Type: typ, Data: data}); err != nil {
		c.removeWaiter(w)
		return err
	}
	d, err := c.wait(ctx, w)
	if err != nil {
		return err
	}
	if d.Type != typ {
		return fmt.Errorf("testclient: terminal %d: %s %d: %w", c.cfg.ID, typ, talkgroup, &UnexpectedError{Want: typ, Got: d})
	}
	return nil
}

// KeepAliveNow sends a KEEP_ALIVE (resuming the keep-alive loop after TERMINAL_IDLE) and waits
// for the broker's echo of it. Because the broker handles a session's datagrams in order, the
// echo also proves that everything sent before has been processed: tests use it as a barrier.
func (c *Client) KeepAliveNow(ctx context.Context) error {
	c.writeMu.Lock()
	target := c.kaSent + 1 // the echo of this keep-alive is the target-th one
	w := c.addWaiter(func(protocol.Datagram) bool { return c.kaEchoed >= target })
	// The write gets its own deadline: cancelling ctx while the write is in flight would close
	// the connection (coder/websocket ends a connection on any write error), and ctx only
	// bounds the wait for the echo.
	wctx, cancel := context.WithTimeout(context.Background(), internalWriteTimeout)
	err := c.writeLocked(wctx, protocol.Datagram{Type: protocol.TypeKeepAlive})
	cancel()
	c.writeMu.Unlock()
	if err != nil {
		c.removeWaiter(w)
		return fmt.Errorf("testclient: terminal %d: keep-alive: %w", c.cfg.ID, err)
	}
	_, err = c.wait(ctx, w)
	return err
}
