package broker

// Push senders: how the broker hands one wake-up to FCM HTTP v1 or APNs (PROTOCOL.md §7).
//
// A Sender sends one PushRequest and answers either a PushResult or a *PushError whose sentinel
// (ErrUnregistered, ErrProviderAuth, ErrThrottled, ErrUnavailable, ErrRejected,
// ErrPayloadTooLarge) tells the wake path what to do next; errors.Is checks the sentinel and
// errors.As reads Status, Reason, RetryAfter and Timestamp. Provider answers are classified with
// the SDKs' own predicates and status codes, never by their text.
//
// The payload builders (push_payload.go) are pure functions. The senders (push_fcm.go,
// push_apns.go) hold long-lived HTTP/2 connections and per-vendor clients; they never fetch
// credentials themselves: the caller passes the token service's Credential with every request
// and, on ErrProviderAuth, invalidates it, fetches a new one and retries once.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-broker/rewind/tokensvc"
)

// Platform names a push provider; the values are TERMINAL_ATTACH's platform strings (§4).
type Platform string

// The two push providers.
const (
	PlatformFCM  Platform = "fcm"
	PlatformAPNs Platform = "apns"
)

// Push kinds: the "type" field of a push payload (§7).
const (
	// PushKindData carries a stored datagram in Body.
	PushKindData = "data"
	// PushKindWake carries TERMINAL_WAKEUP in Body, or nothing.
	PushKindWake = "wake"
)

// Push body encodings: the "enc" field of a push payload (§7).
const (
	// PushEncAES128GCM: Body is sealed per RFC 8291 with the terminal's p256dh and auth.
	PushEncAES128GCM = "aes128gcm"
	// PushEncNone: Body is a plain datagram (legacy terminals, only when the operator allows it).
	PushEncNone = "none"
)

// Push limits.
const (
	// MaxPushPayload is both providers' limit on a push payload, in bytes: for FCM the keys and
	// values of message.data together, for APNs the JSON payload (PushPayloadSize measures
	// either). A base64url body grows by 4/3, so a sealed datagram over about 3 KB does not fit;
	// the wake path sends a wake-only push instead.
	MaxPushPayload = 4096
	// MaxCollapseID is APNs' limit on apns-collapse-id, in bytes; the same limit is applied to
	// FCM's collapse_key so that one identifier works for both.
	MaxCollapseID = 64
)

// Default per-send timeout, shared by both senders.
const (
	// DefaultPushTimeout bounds one send, connection set-up included. FCM and APNs answer within
	// a few hundred milliseconds when healthy; the firebase SDK silently retries a 503 for up to
	// 7 s (and network errors four times), so without a deadline one sick provider would hold a
	// wake worker for seconds. The wake path retries later with its own backoff instead.
	DefaultPushTimeout = 10 * time.Second
)

// PushRequest is one push to one device. Body is raw bytes; the payload builders base64url-encode
// it (without padding).
type PushRequest struct {
	Platform    Platform
	DeviceToken string
	// Credential is the token service's answer for the terminal's vendor. FCM uses Project and
	// Token (an OAuth 2.0 access token); APNs uses Topic, Token (the provider JWT, whose "iss"
	// claim is the team) and Environment ("" means production).
	Credential tokensvc.Credential
	// Topic is the APNs topic (bundle id) from the terminal's attach; empty means
	// Credential.Topic. Unused for FCM.
	Topic string
	// Kind is PushKindData (carries a datagram) or PushKindWake (TERMINAL_WAKEUP or nothing).
	Kind string
	// Enc is PushEncAES128GCM or PushEncNone; ignored when there is no Body.
	Enc string
	// Body is the datagram to carry; nil (or empty) means none. A data push needs one.
	Body []byte
	// Visible says the user will see what the push carries (private text, call, location
	// request): FCM priority high; APNs alert push, mutable-content:1, priority 10. Otherwise FCM
	// priority normal; APNs background push, content-available:1, priority 5.
	Visible bool
	// TTL is the remaining outbox TTL, in whole seconds (truncated): FCM android.ttl "Ns", APNs
	// apns-expiration now+TTL. Zero means deliver now or never (FCM "0s", APNs expiration 0).
	TTL time.Duration
	// CollapseID is one identifier per terminal, at most MaxCollapseID bytes, so the provider
	// keeps only the latest push while the device is offline (APNs apns-collapse-id, FCM
	// android.collapse_key). Empty means none.
	CollapseID string
}

// PushResult is a provider's acceptance of a push.
type PushResult struct {
	// MessageID is FCM's message name ("projects/…/messages/…") or APNs' apns-id.
	MessageID string
	// Status is the HTTP status of the answer (200).
	Status int
}

// Sender sends pushes through one provider. Send is safe for concurrent use; it returns within
// the sender's timeout or when ctx ends, whichever is first. Every failure is a *PushError.
type Sender interface {
	Send(ctx context.Context, req PushRequest) (PushResult, error)
}

// Sentinel errors of a failed push; check them with errors.Is.
var (
	// ErrUnregistered: the device token is no longer valid (FCM UNREGISTERED or
	// SENDER_ID_MISMATCH; APNs 410 Unregistered, 400 BadDeviceToken or DeviceTokenNotForTopic).
	// Mark the attach invalid; do not retry.
	ErrUnregistered = errors.New("push: device token no longer valid")
	// ErrProviderAuth: the provider refused the credential (FCM 401; APNs 403
	// ExpiredProviderToken, InvalidProviderToken, MissingProviderToken). Invalidate the
	// credential, fetch a new one and retry once.
	ErrProviderAuth = errors.New("push: provider refused the credential")
	// ErrThrottled: the provider asks to slow down (429). Retry after PushError.RetryAfter, or
	// with backoff when it is zero.
	ErrThrottled = errors.New("push: throttled by provider")
	// ErrUnavailable: a 5xx answer, an unreadable answer, a network error or a timeout. Retry
	// later with backoff; the push may or may not have been delivered.
	ErrUnavailable = errors.New("push: provider unavailable")
	// ErrRejected: a permanent refusal of this push (400 and other answers that a retry will
	// not change), or a request the sender cannot send. Drop and audit.
	ErrRejected = errors.New("push: rejected")
	// ErrPayloadTooLarge: the payload exceeds MaxPushPayload (found before sending, or answered
	// by APNs 413). Send a wake-only push instead.
	ErrPayloadTooLarge = errors.New("push: payload too large")
)

// maxCauseText bounds the cause's text in PushError.Error.
const maxCauseText = 256

// PushError is a failed push. It unwraps to its sentinel (Err) and to the underlying error
// (Cause, when there is one: a context error on timeout, the SDK's error).
type PushError struct {
	// Err is one of the sentinel errors above.
	Err error
	// Platform is the provider that failed.
	Platform Platform
	// Status is the HTTP status of the provider's answer; 0 when there was none or it was
	// lost (network error, timeout, an APNs answer whose body was not JSON).
	Status int
	// Reason is the provider's error code (FCM "UNREGISTERED", "QUOTA_EXCEEDED"…; APNs
	// "BadDeviceToken"…) or, for failures found before sending, a short description. It never
	// contains a token.
	Reason string
	// RetryAfter is the provider's Retry-After, if it sent one.
	RetryAfter time.Duration
	// Timestamp is, for APNs 410 Unregistered, the last time the device token was valid
	// (second precision); zero otherwise.
	Timestamp time.Time
	// Cause is the underlying error, if any.
	Cause error
}

func (e *PushError) Error() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	if e.Platform != "" {
		fmt.Fprintf(&b, " (%s", e.Platform)
		if e.Status != 0 {
			fmt.Fprintf(&b, " %d", e.Status)
		}
		if e.Reason != "" {
			fmt.Fprintf(&b, " %s", e.Reason)
		}
		b.WriteString(")")
	} else if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.Cause != nil {
		// A proxy's error page can end up in the SDK's error text: keep log lines short.
		cause := e.Cause.Error()
		if len(cause) > maxCauseText {
			cause = strings.ToValidUTF8(cause[:maxCauseText], "") + "…"
		}
		fmt.Fprintf(&b, ": %s", cause)
	}
	return b.String()
}

// Unwrap returns the sentinel and, if set, the cause.
func (e *PushError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// rejectf is a request refused before sending.
func rejectf(p Platform, format string, args ...any) *PushError {
	return &PushError{Err: ErrRejected, Platform: p, Reason: fmt.Sprintf(format, args...)}
}

// maxRetryAfterSeconds bounds a Retry-After in seconds (a day) so that a garbage value cannot
// overflow time.Duration.
const maxRetryAfterSeconds = 24 * 60 * 60

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date. Zero when absent or
// unreadable.
func retryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(value, 10, 64); err == nil {
		return time.Duration(max(min(secs, maxRetryAfterSeconds), 0)) * time.Second
	}
	if t, err := http.ParseTime(value); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
	}
	return 0
}

// pushAnswerKey is the request-context key of the *pushAnswer of one Send.
type pushAnswerKey struct{}

// pushAnswer is what the senders' RoundTripper wrappers saw of the provider's last answer, for
// the cases the SDKs lose it: apns2 drops the status of an answer whose body is not JSON, and the
// firebase SDK's error for a 200 it cannot parse carries no response. It is written and read by
// the goroutine running Send (http.Client.Do calls RoundTrip synchronously).
//
// For FCM it also carries what to send: the Authorization header value of the Send's access
// token (one context value per Send instead of two).
type pushAnswer struct {
	status     int
	retryAfter string

	authorization []string // FCM: ["Bearer " + access token], set before the Send
}

// record notes resp.
func (ans *pushAnswer) record(resp *http.Response) {
	ans.status, ans.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
}

// recordAnswer notes resp in the request's pushAnswer, if it has one.
func recordAnswer(r *http.Request, resp *http.Response, err error) {
	if ans, ok := r.Context().Value(pushAnswerKey{}).(*pushAnswer); ok && err == nil {
		ans.record(resp)
	}
}
