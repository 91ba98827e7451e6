package testclient

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rewind-broker/rewind/protocol"
)

// StatusName returns the name of a MESSAGE_STATUS value ("delivered", "read", "failed"), or its
// number.
func StatusName(s uint8) string {
	switch s {
	case protocol.StatusDelivered:
		return "delivered"
	case protocol.StatusRead:
		return "read"
	case protocol.StatusFailed:
		return "failed"
	}
	return strconv.Itoa(int(s))
}

// FormatDatagram renders d as one human-readable line: its type, the fields of its payload that
// matter to a person watching traffic (from, to, text, status, code), its sequence number and
// "stored" for outbox deliveries. Payloads that do not decode are shown as such, never hidden.
func FormatDatagram(d protocol.Datagram) string {
	var b strings.Builder
	b.WriteString(d.Type.String())
	switch d.Type {
	case protocol.TypeMessageText:
		m, err := protocol.DecodeTextMessage(d.Data)
		if err != nil {
			fmt.Fprintf(&b, " undecodable: %v", err)
			break
		}
		kind := "private"
		if m.Option == protocol.OptionGroup {
			kind = "group"
		}
		fmt.Fprintf(&b, " from=%d to=%d %s text=%q", m.Source, m.Destination, kind, m.Text)
	case protocol.TypeMessageStatus:
		st, err := protocol.DecodeTextStatus(d.Data)
		if err != nil {
			fmt.Fprintf(&b, " undecodable: %v", err)
			break
		}
		fmt.Fprintf(&b, " from=%d to=%d status=%s", st.Source, st.Destination, StatusName(st.Status))
	case protocol.TypeBrokerError:
		be, err := protocol.DecodeBrokerError(d.Data)
		if err != nil {
			fmt.Fprintf(&b, " undecodable: %v", err)
			break
		}
		fmt.Fprintf(&b, " code=%d offending=%s reason=%q", be.Code, be.Offending, be.Reason)
	case protocol.TypeSubscription, protocol.TypeCancelling:
		if s, err := protocol.DecodeSubscription(d.Data); err == nil {
			fmt.Fprintf(&b, " type=%d number=%d", s.Type, s.Number)
		} else if len(d.Data) > 0 {
			fmt.Fprintf(&b, " undecodable: %v", err)
		}
	case protocol.TypeRedirection:
		if r, err := protocol.DecodeRedirection(d.Data); err == nil {
			fmt.Fprintf(&b, " family=%d port=%d", r.Family, r.Port)
		}
	default:
		if len(d.Data) > 0 {
			fmt.Fprintf(&b, " len=%d", len(d.Data))
		}
	}
	fmt.Fprintf(&b, " seq=%d", d.Number)
	if d.Flags&protocol.FlagBuffering != 0 {
		b.WriteString(" stored")
	}
	return b.String()
}
