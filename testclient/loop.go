package testclient

import (
	"context"
	"time"

	"github.com/rewind-broker/rewind/protocol"
)

// writeLoop sends what the client sends on its own: a KEEP_ALIVE every Config.KeepAlive (one
// timer for the session), and the automatic DELIVERY_ACK and MESSAGE_STATUS answers the reader
// asks for. It stops when the session ends or the client closes.
func (c *Client) writeLoop() {
	defer c.wg.Done()
	var timer *time.Timer
	var tick <-chan time.Time // nil (never fires) when keep-alives are disabled
	if c.cfg.KeepAlive > 0 {
		timer = time.NewTimer(c.cfg.KeepAlive)
		defer timer.Stop()
		tick = timer.C
	}
	for {
		select {
		case <-c.life.Done():
			return
		case <-tick:
			c.keepAlive()
			timer.Reset(c.cfg.KeepAlive)
		case <-c.ackSignal:
			c.ackMu.Lock()
			seq, pending := c.ackHigh, c.ackPending
			c.ackPending = false
			c.ackMu.Unlock()
			if pending {
				c.internalSend(protocol.Datagram{Type: protocol.TypeDeliveryAck, Data: protocol.EncodeU32(seq)})
			}
		case st := <-c.statuses:
			c.internalSend(protocol.Datagram{Type: protocol.TypeMessageStatus, Data: st.Encode()})
		}
	}
}

// internalSend writes a datagram the client sends on its own, bounded by internalWriteTimeout.
// A failure is logged; the reader reports the session's end.
func (c *Client) internalSend(d protocol.Datagram) {
	ctx, cancel := context.WithTimeout(c.life, internalWriteTimeout)
	defer cancel()
	if err := c.write(ctx, d); err != nil {
		c.log.Debug("automatic send failed", "type", d.Type, "err", err)
	}
}

// keepAlive sends the loop's KEEP_ALIVE unless the terminal is idle, deciding under the write
// lock so that no keep-alive can follow a TERMINAL_IDLE on the wire.
func (c *Client) keepAlive() {
	ctx, cancel := context.WithTimeout(c.life, internalWriteTimeout)
	defer cancel()
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.idle {
		return
	}
	if err := c.writeLocked(ctx, protocol.Datagram{Type: protocol.TypeKeepAlive}); err != nil {
		c.log.Debug("keep-alive failed", "err", err)
	}
}
