package main

// The admin API's answers that brokerctl reads beyond broker.TerminalInfo and friends. They are
// declared here, by their JSON names, so that brokerctl depends on the API's documented shape
// rather than on the broker's Go types; fields the broker adds later are ignored.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/rewind-broker/rewind/broker"
)

// terminalDetail is GET /v1/terminals/{id}: the terminal, its live session, its push
// attachment, its outbox and the last push sent to it.
type terminalDetail struct {
	broker.TerminalInfo
	// State is active or idle (a live session) or offline.
	State    string      `json:"state,omitempty"`
	Attach   *attachInfo `json:"attach,omitempty"`
	Outbox   *outboxInfo `json:"outbox,omitempty"`
	LastPush *pushRecord `json:"last_push,omitempty"`
}

// attachInfo and outboxInfo are the broker's own API types: brokerctl decodes what the admin
// API encodes, so the two cannot drift.
type (
	attachInfo = broker.AttachInfo
	outboxInfo = broker.OutboxInfo
)

// pushRecord is one entry of the push audit (GET /v1/terminals/{id}/pushes, and last_push).
type pushRecord struct {
	Time      time.Time `json:"time"`
	Terminal  uint32    `json:"terminal,omitempty"`
	Platform  string    `json:"platform"`
	MessageID string    `json:"message_id,omitempty"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"`
	Latency   latency   `json:"latency_ms"`
	Kind      string    `json:"kind,omitempty"`
}

// latency is a duration the API gives in milliseconds (a JSON number, possibly fractional).
type latency time.Duration

func (l *latency) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	*l = latency(ms * float64(time.Millisecond))
	return nil
}

// userDevice is one row of GET /v1/users/{dmrid}/terminals.
type userDevice struct {
	ID   uint32 `json:"id"`
	Name string `json:"name,omitempty"`
	// Platform is the push attachment's platform: fcm, apns or none.
	Platform      string     `json:"platform,omitempty"`
	AttachName    string     `json:"attach_name,omitempty"`
	AttachInvalid bool       `json:"attach_invalid,omitempty"`
	State         string     `json:"state"`
	LastSeen      *time.Time `json:"last_seen,omitempty"`
	Since         *time.Time `json:"since,omitempty"`
}

// event is the data of one GET /v1/events message.
type event struct {
	ID       eventID         `json:"id"`
	Time     time.Time       `json:"time"`
	Type     string          `json:"type"`
	Terminal uint32          `json:"terminal,omitempty"`
	Session  string          `json:"session,omitempty"`
	Platform string          `json:"platform,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Detail   json.RawMessage `json:"detail,omitempty"`
}

// eventID is an event id as text, whether the API writes it as a number or a string; it is
// what Last-Event-ID carries back.
type eventID string

func (id *eventID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = eventID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("event id: %w", err)
	}
	*id = eventID(n.String())
	return nil
}

// publishResult is broker.PublishResult; the alias keeps the field list in one place.
type publishResult = broker.PublishResult

// userPublish is POST /v1/users/{dmrid}/texts.
type userPublish struct {
	Results []publishResult `json:"results"`
}

// formatID formats a terminal or user id for a URL path.
func formatID(id uint32) string { return strconv.FormatUint(uint64(id), 10) }
