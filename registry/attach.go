package registry

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// Push platforms of an Attach.
const (
	PlatformFCM  = "fcm"
	PlatformAPNs = "apns"
)

// Limits of an Attach, enforced by every implementation (PROTOCOL.md §4).
const (
	// MaxAttachURLBytes bounds the token-service URL: the common limit of
	// URLs in browsers and proxies, far more than a vendor's URL needs.
	MaxAttachURLBytes = 2048
	// MaxPushTokenBytes bounds a device token. FCM registration tokens are
	// about 160 bytes and APNs device tokens 64 hex digits today; 4 KiB
	// leaves room for growth without making records large.
	MaxPushTokenBytes = 4096
	// MaxTopicBytes bounds an APNs topic (a bundle id, at most 155
	// characters, plus suffixes such as ".voip").
	MaxTopicBytes = 255
	// MaxInvalidReasonBytes bounds Attach.InvalidReason; MarkAttachInvalid
	// truncates a longer reason rather than losing the invalidation.
	MaxInvalidReasonBytes = 256

	// P256PublicKeyBytes is the size of an uncompressed P-256 public key
	// (0x04 || X || Y): Attach.P256DH, or Attach.SigKey for ES256.
	P256PublicKeyBytes = 65
	// AuthSecretBytes is the size of Attach.Auth.
	AuthSecretBytes = 16
	// Ed25519PublicKeyBytes is the size of an Ed25519 Attach.SigKey.
	Ed25519PublicKeyBytes = 32
)

// Attach is the push channel of a terminal, as given by its TERMINAL_ATTACH
// (PROTOCOL.md §4); a terminal has at most one. URL and Token are secrets:
// String and LogValue redact them, so an Attach may be logged as a whole,
// but never log the fields themselves.
type Attach struct {
	// Terminal is the terminal id; it must be registered. Never 0.
	Terminal uint32
	// Platform is PlatformFCM or PlatformAPNs.
	Platform string
	// URL is the token-service URL (PROTOCOL.md §8): 1..MaxAttachURLBytes
	// bytes. Its query usually holds a secret.
	URL string
	// Token is the FCM registration token or APNs device token:
	// 1..MaxPushTokenBytes bytes.
	Token string
	// Topic is the APNs topic (bundle id): at most MaxTopicBytes bytes.
	Topic string
	// P256DH (P256PublicKeyBytes) and Auth (AuthSecretBytes) are the
	// terminal's payload-encryption keys: both set or both nil.
	P256DH []byte
	Auth   []byte
	// SigKey is the key that signs background token updates: nil,
	// P256PublicKeyBytes (ES256) or Ed25519PublicKeyBytes.
	SigKey []byte
	// Name is the optional device name: at most MaxNameRunes printable
	// runes, like Terminal.Name.
	Name string
	// Legacy is set when the attach came in the legacy "URL SP token" form;
	// such an attach is always FCM and has no keys.
	Legacy bool

	// The fields below are set by the store; PutAttach ignores the values
	// passed in them.

	// Attached is when PutAttach stored this attach (the store's clock).
	Attached time.Time
	// TokenUpdated is when Token was stored: Attached, or the time passed to
	// the last SetPushToken.
	TokenUpdated time.Time
	// Invalid is set by MarkAttachInvalid when the provider said Token is
	// gone, with the provider's reason (at most MaxInvalidReasonBytes
	// bytes) and when it said so. PutAttach and SetPushToken clear all
	// three.
	Invalid       bool
	InvalidReason string
	InvalidAt     time.Time
}

// String describes a with URL and Token redacted (see LogValue).
func (a Attach) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "attach{terminal %d, %s, url %s, token %s", a.Terminal, a.Platform, RedactURL(a.URL), RedactToken(a.Token))
	if a.Topic != "" {
		fmt.Fprintf(&b, ", topic %q", a.Topic)
	}
	if a.Legacy {
		b.WriteString(", legacy")
	}
	if a.Invalid {
		fmt.Fprintf(&b, ", invalid since %s: %q", a.InvalidAt.Format(time.RFC3339), a.InvalidReason)
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String, so that %#v redacts too.
func (a Attach) GoString() string { return a.String() }

// LogValue implements slog.LogValuer: the attach's fields with URL reduced
// to scheme and host, Token to a short prefix and its length, and the keys
// to their sizes.
func (a Attach) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Uint64("terminal", uint64(a.Terminal)),
		slog.String("platform", a.Platform),
		slog.String("url", RedactURL(a.URL)),
		slog.String("token", RedactToken(a.Token)),
	}
	if a.Topic != "" {
		attrs = append(attrs, slog.String("topic", a.Topic))
	}
	if a.P256DH != nil {
		attrs = append(attrs, slog.Bool("encrypted", true))
	}
	if a.SigKey != nil {
		attrs = append(attrs, slog.Int("sigkey_bytes", len(a.SigKey)))
	}
	if a.Legacy {
		attrs = append(attrs, slog.Bool("legacy", true))
	}
	if a.Invalid {
		attrs = append(attrs, slog.String("invalid_reason", a.InvalidReason), slog.Time("invalid_at", a.InvalidAt))
	}
	return slog.GroupValue(attrs...)
}

// RedactURL returns u reduced to scheme and host, with "/…" when anything
// followed (path, query or user info may hold secrets): safe to log.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" || p.Host == "" {
		return fmt.Sprintf("[%d-byte URL]", len(u))
	}
	s := p.Scheme + "://" + p.Host
	if p.User != nil || (p.Path != "" && p.Path != "/") || p.RawQuery != "" || p.Fragment != "" {
		s += "/…"
	}
	return s
}

// RedactToken returns the first characters of a device token and its
// length: enough to tell tokens apart in logs, not enough to use one.
func RedactToken(token string) string {
	const shown = 6
	if len(token) < 4*shown {
		return fmt.Sprintf("[%d bytes]", len(token))
	}
	return fmt.Sprintf("%s…[%d bytes]", token[:shown], len(token))
}

// Attaches keeps the push channel of each terminal. Implementations are
// safe for concurrent use; every mutation is durable when the call returns.
// DeleteTerminal (Store) removes the terminal's attach with it.
type Attaches interface {
	// PutAttach stores a as the attach of terminal a.Terminal, replacing
	// any previous one entirely: a re-attach rotates the keys and clears
	// Invalid. Attached and TokenUpdated become the store's current time.
	// ErrNotFound when the terminal is not registered; ErrInvalid when a
	// fails validation (see Attach and the Max… limits); neither changes
	// anything.
	PutAttach(ctx context.Context, a Attach) error
	// GetAttach returns the attach of terminal, or ErrNotFound.
	GetAttach(ctx context.Context, terminal uint32) (Attach, error)
	// DeleteAttach removes the attach of terminal (TERMINAL_DETACH), or
	// returns ErrNotFound when it has none.
	DeleteAttach(ctx context.Context, terminal uint32) error
	// MarkAttachInvalid records that the provider answered, at at, that
	// device token is gone, with reason (truncated to
	// MaxInvalidReasonBytes). It changes the attach only if its Token is
	// still token and it is not already invalid, and reports whether it
	// did: an answer about a token that a re-attach or SetPushToken has
	// since replaced changes nothing. No attach: false, nil.
	MarkAttachInvalid(ctx context.Context, terminal uint32, token string, reason string, at time.Time) (changed bool, err error)
	// SetPushToken replaces the device token of terminal's attach (a signed
	// background token update), sets TokenUpdated to at and clears Invalid;
	// nothing else changes. ErrNotFound when the terminal has no attach;
	// ErrInvalid for a token that PutAttach would refuse.
	SetPushToken(ctx context.Context, terminal uint32, token string, at time.Time) error
}

// validateAttach checks the fields a caller controls. Error messages give
// sizes, never the secret values.
func validateAttach(a Attach) error {
	id := a.Terminal
	if id == 0 {
		return fmt.Errorf("%w: terminal id 0", ErrInvalid)
	}
	switch a.Platform {
	case PlatformFCM, PlatformAPNs:
	default:
		return fmt.Errorf("%w: terminal %d: platform %q; want %q or %q", ErrInvalid, id, a.Platform, PlatformFCM, PlatformAPNs)
	}
	if err := validateAttachString(id, "token-service URL", a.URL, MaxAttachURLBytes, false); err != nil {
		return err
	}
	if err := validatePushToken(id, a.Token); err != nil {
		return err
	}
	if err := validateAttachString(id, "topic", a.Topic, MaxTopicBytes, true); err != nil {
		return err
	}
	switch {
	case a.P256DH != nil && len(a.P256DH) != P256PublicKeyBytes:
		return fmt.Errorf("%w: terminal %d: p256dh key of %d bytes; want %d", ErrInvalid, id, len(a.P256DH), P256PublicKeyBytes)
	case a.Auth != nil && len(a.Auth) != AuthSecretBytes:
		return fmt.Errorf("%w: terminal %d: auth secret of %d bytes; want %d", ErrInvalid, id, len(a.Auth), AuthSecretBytes)
	case (a.P256DH == nil) != (a.Auth == nil):
		return fmt.Errorf("%w: terminal %d: p256dh and auth must come together", ErrInvalid, id)
	case a.SigKey != nil && len(a.SigKey) != P256PublicKeyBytes && len(a.SigKey) != Ed25519PublicKeyBytes:
		return fmt.Errorf("%w: terminal %d: signature key of %d bytes; want %d (P-256) or %d (Ed25519)",
			ErrInvalid, id, len(a.SigKey), P256PublicKeyBytes, Ed25519PublicKeyBytes)
	case a.Legacy && (a.Platform != PlatformFCM || a.P256DH != nil || a.SigKey != nil):
		return fmt.Errorf("%w: terminal %d: a legacy attach is FCM without keys", ErrInvalid, id)
	}
	return validateName(id, a.Name)
}

func validatePushToken(id uint32, token string) error {
	return validateAttachString(id, "device token", token, MaxPushTokenBytes, false)
}

// validateAttachString checks the size of s and that it is UTF-8 without
// spaces or control characters: these values end up in URLs, HTTP paths
// and headers, and the legacy form separates URL and token with a space.
func validateAttachString(id uint32, what, s string, limit int, optional bool) error {
	switch {
	case s == "" && !optional:
		return fmt.Errorf("%w: terminal %d: empty %s", ErrInvalid, id, what)
	case len(s) > limit:
		return fmt.Errorf("%w: terminal %d: %s of %d bytes, limit %d", ErrInvalid, id, what, len(s), limit)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: terminal %d: %s is not UTF-8", ErrInvalid, id, what)
	}
	for i, r := range s {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%w: terminal %d: %s has a space or control character at byte %d", ErrInvalid, id, what, i)
		}
	}
	return nil
}

// truncateReason bounds a provider's reason to MaxInvalidReasonBytes of
// valid UTF-8.
func truncateReason(reason string) string {
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	if len(reason) <= MaxInvalidReasonBytes {
		return reason
	}
	cut := MaxInvalidReasonBytes
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

// attachRecord is the stored form of an Attach; the terminal id is the key.
// Times are Unix nanoseconds, 0 for the zero time.
type attachRecord struct {
	Version       int      `msgpack:"v"`
	Platform      string   `msgpack:"p"`
	URL           string   `msgpack:"u"`
	Token         string   `msgpack:"t"`
	Topic         string   `msgpack:"tp,omitempty"`
	P256DH        keyBytes `msgpack:"k,omitempty"`
	Auth          keyBytes `msgpack:"a,omitempty"`
	SigKey        keyBytes `msgpack:"sk,omitempty"`
	Name          string   `msgpack:"n,omitempty"`
	Legacy        bool     `msgpack:"l,omitempty"`
	Attached      int64    `msgpack:"at"`
	TokenUpdated  int64    `msgpack:"tu"`
	Invalid       bool     `msgpack:"i,omitempty"`
	InvalidReason string   `msgpack:"ir,omitempty"`
	InvalidAt     int64    `msgpack:"ia,omitempty"`
}

// keyBytes decodes with a length check before allocating, like
// datagramBytes.
type keyBytes []byte

// DecodeMsgpack implements msgpack.CustomDecoder.
func (k *keyBytes) DecodeMsgpack(dec *msgpack.Decoder) error {
	b, err := decodeBoundedBytes(dec, P256PublicKeyBytes)
	*k = b
	return err
}

// decodeBoundedBytes decodes a msgpack bin (or nil) of at most limit bytes,
// checking the claimed length before allocating.
func decodeBoundedBytes(dec *msgpack.Decoder, limit int) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%d bytes, limit %d", n, limit)
	}
	if n < 0 {
		return nil, nil
	}
	b := make([]byte, n)
	if err := dec.ReadFull(b); err != nil {
		return nil, err
	}
	return b, nil
}

func encodeAttach(a Attach) ([]byte, error) {
	return msgpack.Marshal(&attachRecord{
		Version:       recordVersion,
		Platform:      a.Platform,
		URL:           a.URL,
		Token:         a.Token,
		Topic:         a.Topic,
		P256DH:        a.P256DH,
		Auth:          a.Auth,
		SigKey:        a.SigKey,
		Name:          a.Name,
		Legacy:        a.Legacy,
		Attached:      nanos(a.Attached),
		TokenUpdated:  nanos(a.TokenUpdated),
		Invalid:       a.Invalid,
		InvalidReason: a.InvalidReason,
		InvalidAt:     nanos(a.InvalidAt),
	})
}

// decodeAttach decodes the stored attach of terminal. Any malformed or
// invalid input gives an error wrapping ErrCorrupt.
func decodeAttach(terminal uint32, b []byte) (Attach, error) {
	var rec attachRecord
	if err := decodeStrict(b, &rec); err != nil {
		return Attach{}, fmt.Errorf("%w: attach of terminal %d: %v", ErrCorrupt, terminal, err)
	}
	if rec.Version != recordVersion {
		return Attach{}, fmt.Errorf("%w: attach of terminal %d: record version %d", ErrCorrupt, terminal, rec.Version)
	}
	a := Attach{
		Terminal:      terminal,
		Platform:      rec.Platform,
		URL:           rec.URL,
		Token:         rec.Token,
		Topic:         rec.Topic,
		P256DH:        nilIfEmpty(rec.P256DH),
		Auth:          nilIfEmpty(rec.Auth),
		SigKey:        nilIfEmpty(rec.SigKey),
		Name:          rec.Name,
		Legacy:        rec.Legacy,
		Attached:      fromNanos(rec.Attached),
		TokenUpdated:  fromNanos(rec.TokenUpdated),
		Invalid:       rec.Invalid,
		InvalidReason: rec.InvalidReason,
		InvalidAt:     fromNanos(rec.InvalidAt),
	}
	if err := validateAttach(a); err != nil {
		return Attach{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(a.InvalidReason) > MaxInvalidReasonBytes {
		return Attach{}, fmt.Errorf("%w: attach of terminal %d: invalid reason of %d bytes", ErrCorrupt, terminal, len(a.InvalidReason))
	}
	return a, nil
}

// nilIfEmpty keeps "no key" as nil: omitempty drops an empty slice, so
// only nil can come back.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
