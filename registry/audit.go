package registry

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// PushAudit is one push attempt's outcome for one terminal: the durable answer to "did the
// broker try to wake my phone, when, and what did FCM or APNs say".
type PushAudit struct {
	// Terminal is the terminal the push was for. Never 0.
	Terminal uint32
	// Time is when the attempt ended. A zero Time means the store's now.
	Time time.Time
	// Platform is "fcm" or "apns", or empty when the attempt never got that far (no attach).
	Platform string
	// MessageID is the provider's id for an accepted push (FCM message name, apns-id).
	MessageID string
	// Outcome is the broker's wake outcome ("sent", "token_invalid", "retrying", ...).
	Outcome string
	// Reason says why an attempt failed: the provider's or token service's error.
	Reason string
	// Latency is from the start of the wake to the provider's answer (token lookup included).
	Latency time.Duration
	// Kind is the push kind ("data" or "wake") when one was sent.
	Kind string
}

// Limits of a PushAudit, enforced by every implementation. Platform, Outcome and Kind are short
// fixed words: longer ones are refused (ErrInvalid). MessageID and Reason come from providers:
// longer ones are cut (at a UTF-8 boundary) rather than refused, so that an audit record is
// never lost for its length.
const (
	MaxAuditLabelBytes     = 32
	MaxAuditMessageIDBytes = 256
	MaxAuditReasonBytes    = 512
)

// Audits is the durable push audit trail. Implementations are safe for concurrent use; every
// append is durable when the call returns.
//
// Expiry is exact and explicit, as for blobs: a record is expired from its expires instant on
// (by the store's clock), ListAudit hides expired records, and ExpireAudits removes them, so the
// broker calls it periodically. A zero expires never expires. Deleting a terminal does not delete
// its audit records: they go at their expiry, and remain useful to explain what happened.
type Audits interface {
	// AppendAudit stores a. a.Terminal must not be 0, a.Outcome must be 1..MaxAuditLabelBytes
	// bytes and Platform and Kind at most MaxAuditLabelBytes, else ErrInvalid; MessageID and
	// Reason are cut to their limits. Several records of one terminal with the same Time are
	// all kept.
	AppendAudit(ctx context.Context, a PushAudit, expires time.Time) error
	// ListAudit returns up to limit unexpired records of terminal with Time before before (a
	// zero before: the newest), newest first. To page, pass the Time of the last record as the
	// next before (records sharing that exact nanosecond are then skipped). limit must be in
	// 1..MaxPageSize, else ErrInvalid.
	ListAudit(ctx context.Context, terminal uint32, before time.Time, limit int) ([]PushAudit, error)
	// ExpireAudits removes every record whose expires is not after now and returns how many.
	ExpireAudits(ctx context.Context, now time.Time) (removed int, err error)
}

// Key prefixes of the audit trail (the other prefixes are in keys.go; TestAuditPrefixes keeps
// them apart):
//
//	'h' terminal:4 time:8 n:2                audit record (msgpack); time is Unix ns with the
//	                                         sign bit flipped; n tells apart records of one
//	                                         terminal in the same nanosecond
//	'H' expires:8 terminal:4 time:8 n:2      audit expiry index (empty value), as 'e'
const (
	prefixAudit    byte = 'h'
	prefixAuditExp byte = 'H'

	auditKeyLen       = 1 + 4 + 8 + 2
	auditExpiryKeyLen = 1 + 8 + auditKeyLen - 1
)

func auditPrefix(terminal uint32) []byte {
	k := make([]byte, 1+4, auditKeyLen)
	k[0] = prefixAudit
	binary.BigEndian.PutUint32(k[1:], terminal)
	return k
}

func auditKey(terminal uint32, at int64, n uint16) []byte {
	k := binary.BigEndian.AppendUint64(auditPrefix(terminal), expiryStamp(at))
	return binary.BigEndian.AppendUint16(k, n)
}

func parseAuditKey(k []byte) (terminal uint32, at int64, ok bool) {
	if len(k) != auditKeyLen || k[0] != prefixAudit {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(k[1:]), int64(binary.BigEndian.Uint64(k[5:]) ^ (1 << 63)), true
}

// auditExpiryKey indexes the record stored under key (an audit key) by expires.
func auditExpiryKey(expires int64, key []byte) []byte {
	k := make([]byte, 1, auditExpiryKeyLen)
	k[0] = prefixAuditExp
	k = binary.BigEndian.AppendUint64(k, expiryStamp(expires))
	return append(k, key[1:]...)
}

// parseAuditExpiryKey returns the expiry and the audit key of an index key.
func parseAuditExpiryKey(k []byte) (expires int64, key []byte, ok bool) {
	if len(k) != auditExpiryKeyLen || k[0] != prefixAuditExp {
		return 0, nil, false
	}
	key = make([]byte, auditKeyLen)
	key[0] = prefixAudit
	copy(key[1:], k[9:])
	return int64(binary.BigEndian.Uint64(k[1:]) ^ (1 << 63)), key, true
}

// validateAudit checks a record and cuts its free-text fields to their limits.
func validateAudit(a PushAudit) (PushAudit, error) {
	switch {
	case a.Terminal == 0:
		return a, fmt.Errorf("%w: audit for terminal 0", ErrInvalid)
	case a.Outcome == "":
		return a, fmt.Errorf("%w: audit without an outcome", ErrInvalid)
	case len(a.Outcome) > MaxAuditLabelBytes || len(a.Platform) > MaxAuditLabelBytes || len(a.Kind) > MaxAuditLabelBytes:
		return a, fmt.Errorf("%w: audit outcome, platform or kind longer than %d bytes", ErrInvalid, MaxAuditLabelBytes)
	case a.Latency < 0:
		return a, fmt.Errorf("%w: negative audit latency", ErrInvalid)
	}
	a.MessageID = cutUTF8(a.MessageID, MaxAuditMessageIDBytes)
	a.Reason = cutUTF8(a.Reason, MaxAuditReasonBytes)
	return a, nil
}

// cutUTF8 cuts s to at most n bytes without splitting a rune.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// auditRecord is the stored form of a PushAudit; terminal and time are the key.
type auditRecord struct {
	Version   int         `msgpack:"v"`
	Platform  auditString `msgpack:"p,omitempty"`
	MessageID auditString `msgpack:"m,omitempty"`
	Outcome   auditString `msgpack:"o"`
	Reason    auditString `msgpack:"r,omitempty"`
	Latency   int64       `msgpack:"l,omitempty"` // ns
	Kind      auditString `msgpack:"k,omitempty"`
	Expires   int64       `msgpack:"e,omitempty"` // Unix ns, 0: never
}

// auditString decodes with a length check (the largest audit field) before allocating.
type auditString string

// DecodeMsgpack implements msgpack.CustomDecoder.
func (s *auditString) DecodeMsgpack(dec *msgpack.Decoder) error {
	b, err := decodeBoundedBytes(dec, MaxAuditReasonBytes)
	*s = auditString(b)
	return err
}

func encodeAudit(a PushAudit, expires int64) ([]byte, error) {
	return msgpack.Marshal(&auditRecord{
		Version:   recordVersion,
		Platform:  auditString(a.Platform),
		MessageID: auditString(a.MessageID),
		Outcome:   auditString(a.Outcome),
		Reason:    auditString(a.Reason),
		Latency:   int64(a.Latency),
		Kind:      auditString(a.Kind),
		Expires:   expires,
	})
}

// decodeAudit decodes the record stored under key. Any malformed input gives an error wrapping
// ErrCorrupt.
func decodeAudit(key, b []byte) (PushAudit, int64, error) {
	terminal, at, ok := parseAuditKey(key)
	if !ok {
		return PushAudit{}, 0, fmt.Errorf("%w: audit key %x", ErrCorrupt, key)
	}
	var rec auditRecord
	if err := decodeStrict(b, &rec); err != nil {
		return PushAudit{}, 0, fmt.Errorf("%w: audit %d/%d: %v", ErrCorrupt, terminal, at, err)
	}
	if rec.Version != recordVersion {
		return PushAudit{}, 0, fmt.Errorf("%w: audit %d/%d: record version %d", ErrCorrupt, terminal, at, rec.Version)
	}
	a := PushAudit{
		Terminal:  terminal,
		Time:      time.Unix(0, at).UTC(),
		Platform:  string(rec.Platform),
		MessageID: string(rec.MessageID),
		Outcome:   string(rec.Outcome),
		Reason:    string(rec.Reason),
		Latency:   time.Duration(rec.Latency),
		Kind:      string(rec.Kind),
	}
	if _, err := validateAudit(a); err != nil || len(a.MessageID) > MaxAuditMessageIDBytes || len(a.Reason) > MaxAuditReasonBytes {
		return PushAudit{}, 0, fmt.Errorf("%w: audit %d/%d: fields out of range", ErrCorrupt, terminal, at)
	}
	return a, rec.Expires, nil
}
