package testclient

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rewind-broker/rewind/protocol"
)

// Outcome is how a one-shot send ended, as `testclient send` reports it.
type Outcome int

// Outcomes of SendOnce.
const (
	// OutcomeDelivered: the recipient answered MESSAGE_STATUS delivered (or read); for a group
	// text, the broker processed it without a BROKER_ERROR.
	OutcomeDelivered Outcome = iota
	// OutcomeRejected: the broker answered BROKER_ERROR, or the recipient reported failure.
	OutcomeRejected
	// OutcomeNoStatus: no status within the wait. The broker accepted the text; a private text
	// to a terminal that is offline or idle is stored and delivered later.
	OutcomeNoStatus
)

// SendResult is what SendOnce observed.
type SendResult struct {
	Outcome     Outcome
	Status      *protocol.TextStatus  // the recipient's status, if one came
	BrokerError *protocol.BrokerError // the broker's refusal, if one came
}

// SendOptions describes one text for SendOnce. Exactly one of To and Group is non-zero.
type SendOptions struct {
	To    uint32 // private text to this terminal or user
	Group uint32 // group text to this talkgroup
	Text  string
}

// SendOnce connects with cfg, sends one text and waits, within ctx, for its fate: the
// recipient's MESSAGE_STATUS (private) or the broker's BROKER_ERROR. A group text has no
// recipient status; it counts as delivered once a keep-alive barrier shows the broker handled it
// without complaint. Datagrams other than those are ignored. The session is closed on return.
// A context that ends first gives OutcomeNoStatus, not an error.
func SendOnce(ctx context.Context, cfg Config, opt SendOptions) (SendResult, error) {
	if (opt.To == 0) == (opt.Group == 0) {
		return SendResult{}, errors.New("testclient: exactly one of To and Group must be set")
	}
	c, err := Dial(ctx, cfg)
	if err != nil {
		return SendResult{}, err
	}
	defer c.Close()

	if opt.Group != 0 {
		if err := c.SendGroupText(ctx, opt.Group, opt.Text); err != nil {
			return SendResult{}, err
		}
		if err := c.KeepAliveNow(ctx); err != nil {
			if ctx.Err() != nil {
				return SendResult{Outcome: OutcomeNoStatus}, nil
			}
			return SendResult{}, err
		}
		for d, ok := c.TryRecv(); ok; d, ok = c.TryRecv() {
			if be, err := protocol.DecodeBrokerError(d.Data); d.Type == protocol.TypeBrokerError && err == nil {
				return SendResult{Outcome: OutcomeRejected, BrokerError: &be}, nil
			}
		}
		return SendResult{Outcome: OutcomeDelivered}, nil
	}

	if err := c.SendText(ctx, opt.To, opt.Text); err != nil {
		return SendResult{}, err
	}
	for {
		d, err := c.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return SendResult{Outcome: OutcomeNoStatus}, nil
			}
			return SendResult{}, err
		}
		switch d.Type {
		case protocol.TypeBrokerError:
			be, err := protocol.DecodeBrokerError(d.Data)
			if err != nil {
				return SendResult{}, fmt.Errorf("%w: %w", ErrBrokerProtocol, err)
			}
			return SendResult{Outcome: OutcomeRejected, BrokerError: &be}, nil
		case protocol.TypeMessageStatus:
			st, err := protocol.DecodeTextStatus(d.Data)
			if err != nil || st.Source != opt.To {
				continue // not about our text
			}
			out := OutcomeDelivered
			if st.Status == protocol.StatusFailed {
				out = OutcomeRejected
			}
			return SendResult{Outcome: out, Status: &st}, nil
		}
	}
}

// ListenOptions is what Listen does after connecting.
type ListenOptions struct {
	// Groups are the talkgroups to subscribe to.
	Groups []uint32
	// Attach, when set, is sent (and must be accepted) before the subscriptions.
	Attach *AttachOptions
}

// Listen connects with cfg (AutoStatus and AutoAck forced on, as a well-behaved terminal),
// attaches opt.Attach if set, subscribes to every talkgroup in opt.Groups, and writes one
// FormatDatagram line per datagram received to out until ctx ends (nil) or the session ends
// (its error).
func Listen(ctx context.Context, cfg Config, opt ListenOptions, out io.Writer) error {
	cfg.AutoStatus, cfg.AutoAck = true, true
	c, err := Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if opt.Attach != nil {
		if err := c.Attach(ctx, *opt.Attach); err != nil {
			return err
		}
	}
	for _, g := range opt.Groups {
		if err := c.Subscribe(ctx, g); err != nil {
			return err
		}
	}
	for {
		d, err := c.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if _, err := fmt.Fprintln(out, FormatDatagram(d)); err != nil {
			return err
		}
	}
}
