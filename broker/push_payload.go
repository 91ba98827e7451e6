package broker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The alert an APNs visible push shows until the app's Notification Service Extension replaces it
// with the opened datagram. It says nothing about the content: the body is sealed.
const (
	apnsAlertTitle = "New message"
	apnsAlertBody  = "Open to read"
)

// maxDeviceToken bounds a device token (FCM registration tokens are about 160 bytes, APNs tokens
// 64 hex digits today, at most 100 bytes by Apple's word).
const maxDeviceToken = 1024

// pushData is the Rewind part of a push: FCM's message.data, APNs' top-level "rewind" (§7).
// Field order is the wire order.
type pushData struct {
	Type string `json:"type"`
	Enc  string `json:"enc,omitempty"`
	Body string `json:"body,omitempty"`
}

// size is what FCM counts against its data limit: the bytes of all keys and values.
func (d pushData) size() int {
	n := len("type") + len(d.Type)
	if d.Enc != "" {
		n += len("enc") + len(d.Enc)
	}
	if d.Body != "" {
		n += len("body") + len(d.Body)
	}
	return n
}

// fillFCM puts d into m, an empty map, as FCM's message.data.
func (d pushData) fillFCM(m map[string]string) {
	m["type"] = d.Type
	if d.Enc != "" {
		m["enc"] = d.Enc
	}
	if d.Body != "" {
		m["body"] = d.Body
	}
}

// FCM HTTP v1 messages:send body, as far as the broker uses it.
type fcmSendBody struct {
	Message fcmMessageBody `json:"message"`
}

type fcmMessageBody struct {
	Token   string         `json:"token"`
	Data    pushData       `json:"data"`
	Android fcmAndroidBody `json:"android"`
}

type fcmAndroidBody struct {
	Priority    string `json:"priority"`
	TTL         string `json:"ttl"`
	CollapseKey string `json:"collapse_key,omitempty"`
}

// APNs payload.
type apnsPayload struct {
	APS    apsDictionary `json:"aps"`
	Rewind pushData      `json:"rewind"`
}

type apsDictionary struct {
	Alert            *apsAlert `json:"alert,omitempty"`
	MutableContent   int       `json:"mutable-content,omitempty"`
	ContentAvailable int       `json:"content-available,omitempty"`
}

type apsAlert struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

// checkPush validates what both providers need from req and returns its Rewind data.
func checkPush(p Platform, req PushRequest) (pushData, *PushError) {
	if perr := validatePush(p, req); perr != nil {
		return pushData{}, perr
	}
	d := pushData{Type: req.Kind}
	if len(req.Body) > 0 {
		d.Enc = req.Enc
		d.Body = base64URL(req.Body)
	}
	return d, nil
}

// validatePush is checkPush without building the data.
func validatePush(p Platform, req PushRequest) *PushError {
	switch {
	case req.DeviceToken == "":
		return rejectf(p, "no device token")
	case len(req.DeviceToken) > maxDeviceToken:
		return rejectf(p, "device token of %d bytes", len(req.DeviceToken))
	case req.Kind != PushKindData && req.Kind != PushKindWake:
		return rejectf(p, "unknown push kind %q", req.Kind)
	case req.Kind == PushKindData && len(req.Body) == 0:
		return rejectf(p, "data push without a body")
	case len(req.Body) > 0 && req.Enc != PushEncAES128GCM && req.Enc != PushEncNone:
		return rejectf(p, "unknown body encoding %q", req.Enc)
	case req.TTL < 0:
		return rejectf(p, "negative TTL")
	case len(req.CollapseID) > MaxCollapseID:
		return rejectf(p, "collapse id of %d bytes (at most %d)", len(req.CollapseID), MaxCollapseID)
	}
	return nil
}

// fcmDataSize is checkPush(PlatformFCM, req)'s data size without encoding the body: the wake
// path sizes every push before sending it.
func fcmDataSize(req PushRequest) int {
	n := len("type") + len(req.Kind)
	if len(req.Body) > 0 {
		n += len("enc") + len(req.Enc) + len("body") + base64.RawURLEncoding.EncodedLen(len(req.Body))
	}
	return n
}

// base64URL is base64.RawURLEncoding.EncodeToString(src) in one allocation instead of two (the
// encoded bytes, then their copy into a string): it encodes 48-byte chunks, whose encodings
// concatenate to the encoding of the whole, on the stack into a builder of the final size.
func base64URL(src []byte) string {
	const chunk = 48 // a multiple of 3: no partial quantum but in the last chunk
	var b strings.Builder
	b.Grow(base64.RawURLEncoding.EncodedLen(len(src)))
	var buf [chunk / 3 * 4]byte
	for len(src) > 0 {
		n := min(len(src), chunk)
		m := base64.RawURLEncoding.EncodedLen(n)
		base64.RawURLEncoding.Encode(buf[:m], src[:n])
		b.Write(buf[:m])
		src = src[n:]
	}
	return b.String()
}

// ttlSeconds is req.TTL in whole seconds, truncated.
func ttlSeconds(ttl time.Duration) int64 { return int64(ttl / time.Second) }

// fcmPriority is android.priority for req.
func fcmPriority(req PushRequest) string {
	if req.Visible {
		return "high"
	}
	return "normal"
}

func tooLarge(p Platform, size int) *PushError {
	return &PushError{Err: ErrPayloadTooLarge, Platform: p,
		Reason: fmt.Sprintf("payload of %d bytes (at most %d)", size, MaxPushPayload)}
}

// BuildFCMMessage returns the FCM HTTP v1 messages:send body for req (PROTOCOL.md §7):
//
//	{"message":{"token":…,"data":{"type":…,"enc":…,"body":…},"android":{"priority":…,"ttl":"Ns","collapse_key":…}}}
//
// enc and body are left out when req has no body, collapse_key when req.CollapseID is empty. It
// fails with ErrRejected for a request that cannot be sent and with ErrPayloadTooLarge when the
// data exceeds MaxPushPayload (see PushPayloadSize).
func BuildFCMMessage(req PushRequest) ([]byte, error) {
	d, perr := checkPush(PlatformFCM, req)
	if perr != nil {
		return nil, perr
	}
	if n := d.size(); n > MaxPushPayload {
		return nil, tooLarge(PlatformFCM, n)
	}
	return json.Marshal(fcmSendBody{Message: fcmMessageBody{
		Token: req.DeviceToken,
		Data:  d,
		Android: fcmAndroidBody{
			Priority:    fcmPriority(req),
			TTL:         strconv.FormatInt(ttlSeconds(req.TTL), 10) + "s",
			CollapseKey: req.CollapseID,
		},
	}})
}

// BuildAPNsPayload returns the APNs JSON payload for req (PROTOCOL.md §7). A visible push is an
// alert the app's Notification Service Extension replaces once it has opened the body:
//
//	{"aps":{"alert":{"title":"New message","body":"Open to read"},"mutable-content":1},"rewind":{…}}
//
// anything else a background push: {"aps":{"content-available":1},"rewind":{…}}. The headers
// (push type, priority, expiration, collapse id, topic) are the sender's. It fails with
// ErrRejected for a request that cannot be sent and with ErrPayloadTooLarge when the payload
// exceeds MaxPushPayload.
func BuildAPNsPayload(req PushRequest) ([]byte, error) {
	b, perr := marshalAPNs(req)
	if perr != nil {
		return nil, perr
	}
	if len(b) > MaxPushPayload {
		return nil, tooLarge(PlatformAPNs, len(b))
	}
	return b, nil
}

// marshalAPNs is BuildAPNsPayload without the size limit.
func marshalAPNs(req PushRequest) ([]byte, *PushError) {
	d, perr := checkPush(PlatformAPNs, req)
	if perr != nil {
		return nil, perr
	}
	payload := apnsPayload{Rewind: d}
	if req.Visible {
		payload.APS = apsDictionary{Alert: &apsAlert{Title: apnsAlertTitle, Body: apnsAlertBody}, MutableContent: 1}
	} else {
		payload.APS = apsDictionary{ContentAvailable: 1}
	}
	b, err := json.Marshal(payload)
	if err != nil { // cannot happen: strings and ints only
		return nil, &PushError{Err: ErrRejected, Platform: PlatformAPNs, Reason: "payload", Cause: err}
	}
	return b, nil
}

// PushPayloadSize is the size of req's payload as its provider counts it against
// MaxPushPayload: for FCM the bytes of message.data's keys and values, for APNs the bytes of the
// JSON payload. The body is counted base64url-encoded (4/3 of its raw size), so the wake path
// calls this before sending a sealed datagram and falls back to a wake-only push when the result
// exceeds MaxPushPayload. It fails with ErrRejected for a request that cannot be sent (unknown
// platform, kind or encoding, negative TTL…), not for a payload that is too large.
func PushPayloadSize(req PushRequest) (int, error) {
	switch req.Platform {
	case PlatformFCM:
		if perr := validatePush(PlatformFCM, req); perr != nil {
			return 0, perr
		}
		return fcmDataSize(req), nil
	case PlatformAPNs:
		b, perr := marshalAPNs(req)
		if perr != nil {
			return 0, perr
		}
		return len(b), nil
	}
	return 0, rejectf(req.Platform, "unknown platform %q", req.Platform)
}
