package pushsim

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// APNs limits the fake enforces.
const (
	// APNsMaxPayload is Apple's limit on a notification payload (VoIP's 5120 is not simulated).
	APNsMaxPayload = 4096
	// APNsMaxCollapseID is Apple's limit on apns-collapse-id, in bytes.
	APNsMaxCollapseID = 64

	apnsContentType = "application/json"
	apnsPathPrefix  = "/3/device/"
)

var (
	// A bundle id and its suffixes (".voip", ".push-type.liveactivity"…).
	apnsTopicSyntax = regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$`)
	uuidSyntax      = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

	apnsPushTypes = []string{"alert", "background", "location", "voip", "complication",
		"fileprovider", "mdm", "liveactivity", "pushtotalk", "widgets", "controls"}
)

// APNs is a fake Apple Push Notification service endpoint (api.push.apple.com) speaking HTTP/2
// only, with token-based (JWT) authentication: an HTTP/1.1 client cannot even finish the TLS
// handshake, as with Apple.
//
// A request is answered in this order, each refusal as {"reason":…} with the request's apns-id: a
// queued Fault (FailNext); 405 MethodNotAllowed; 404 BadPath; 400 MissingDeviceToken; 403
// MissingProviderToken, InvalidProviderToken (never issued) or ExpiredProviderToken (revoked); 400
// MissingTopic, BadTopic, InvalidPushType, BadPriority (not 10, 5 or 1, or 10 on a background
// push, which Apple calls an error), BadExpirationDate, BadCollapseId (over APNsMaxCollapseID
// bytes), BadMessageId (apns-id not a UUID); 413 PayloadTooLarge (over APNsMaxPayload bytes); 400
// PayloadEmpty; 400 BadPayload (not a JSON object — a reason Apple does not document, named so a
// broker bug shows); 400 BadDeviceToken (never registered); 400 DeviceTokenNotForTopic; 410
// Unregistered with "timestamp" (milliseconds) = when Unregister was called; otherwise 200 with
// an apns-id header and no body, and the push is recorded.
type APNs struct {
	endpoint
}

// NewAPNs starts a fake APNs server on loopback. Close it when done.
func NewAPNs() *APNs { return newAPNs(newJournal(), true) }

func newAPNs(j *journal, ownsJournal bool) *APNs {
	a := &APNs{}
	a.platform, a.journal, a.ownsJournal = PlatformAPNs, j, ownsJournal
	a.start(http.HandlerFunc(a.serve), func(s *httptest.Server) {
		var p http.Protocols
		p.SetHTTP2(true) // and not HTTP/1: a TLS connection without ALPN "h2" is closed
		s.Config.Protocols = &p
	})
	return a
}

// Issue mints a provider authentication token (a JWT whose issuer is team, with a random
// signature nothing checks), as the vendor's token service would hand out; it stays valid until
// Revoke.
func (a *APNs) Issue(team string) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": strings.ToUpper(hex.EncodeToString(randomBytes(5)))})
	claims, _ := json.Marshal(map[string]any{"iss": team, "iat": time.Now().Unix()})
	jwt := enc.EncodeToString(header) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(randomBytes(64))
	return a.issue(team, jwt)
}

// RegisterDevice mints a device token (64 hex digits) for an app whose bundle id is topic, as a
// phone gets from registerForRemoteNotifications.
func (a *APNs) RegisterDevice(topic string) string {
	return a.register(topic, hex.EncodeToString(randomBytes(32)))
}

type apnsErrorBody struct {
	Reason    string `json:"reason"`
	Timestamp int64  `json:"timestamp,omitempty"` // milliseconds since the epoch; 410 only
}

// apnsAnswer is a refusal in APNs' error shape.
type apnsAnswer struct {
	status int
	body   apnsErrorBody
}

func refuse(status int, reason string) *apnsAnswer {
	return &apnsAnswer{status: status, body: apnsErrorBody{Reason: reason}}
}

func (a *APNs) serve(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		panic(http.ErrAbortHandler) // cannot happen: the server speaks HTTP/2 only
	}
	fault, ok := a.admit(r)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	if fault != nil {
		fault.write(w)
		return
	}
	id := r.Header.Get("apns-id")
	if !uuidSyntax.MatchString(id) {
		id = newUUID()
	}
	w.Header().Set("apns-id", id)
	ans := a.handle(r, id)
	if ans != nil {
		writeJSON(w, apnsContentType, ans.status, ans.body)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *APNs) handle(r *http.Request, id string) *apnsAnswer {
	if r.Method != http.MethodPost {
		return refuse(http.StatusMethodNotAllowed, "MethodNotAllowed")
	}
	deviceToken, ok := strings.CutPrefix(r.URL.Path, apnsPathPrefix)
	if !ok || strings.Contains(deviceToken, "/") {
		return refuse(http.StatusNotFound, "BadPath")
	}
	if deviceToken == "" {
		return refuse(http.StatusBadRequest, "MissingDeviceToken")
	}

	auth := r.Header.Get("Authorization")
	if auth == "" {
		return refuse(http.StatusForbidden, "MissingProviderToken")
	}
	bearerToken, _ := cutPrefixFold(auth, "bearer ")
	switch _, state := a.checkBearer(bearerToken); state {
	case bearerUnknown:
		return refuse(http.StatusForbidden, "InvalidProviderToken")
	case bearerRevoked:
		return refuse(http.StatusForbidden, "ExpiredProviderToken")
	}

	topic := r.Header.Get("apns-topic")
	if topic == "" {
		return refuse(http.StatusBadRequest, "MissingTopic")
	}
	if !apnsTopicSyntax.MatchString(topic) {
		return refuse(http.StatusBadRequest, "BadTopic")
	}
	pushType := r.Header.Get("apns-push-type")
	if pushType == "" {
		pushType = "alert"
	} else if !containsString(apnsPushTypes, pushType) {
		return refuse(http.StatusBadRequest, "InvalidPushType")
	}
	priority := r.Header.Get("apns-priority")
	switch priority {
	case "", "5", "1":
	case "10":
		if pushType == "background" {
			return refuse(http.StatusBadRequest, "BadPriority")
		}
	default:
		return refuse(http.StatusBadRequest, "BadPriority")
	}
	var expiration time.Time
	if h := r.Header.Get("apns-expiration"); h != "" {
		secs, err := strconv.ParseInt(h, 10, 64)
		if err != nil || secs < 0 {
			return refuse(http.StatusBadRequest, "BadExpirationDate")
		}
		if secs > 0 {
			expiration = time.Unix(secs, 0)
		}
	}
	collapseID := r.Header.Get("apns-collapse-id")
	if len(collapseID) > APNsMaxCollapseID {
		return refuse(http.StatusBadRequest, "BadCollapseId")
	}
	if h := r.Header.Get("apns-id"); h != "" && !uuidSyntax.MatchString(h) {
		return refuse(http.StatusBadRequest, "BadMessageId")
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, APNsMaxPayload+1))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if len(body) > APNsMaxPayload {
		return refuse(http.StatusRequestEntityTooLarge, "PayloadTooLarge")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return refuse(http.StatusBadRequest, "PayloadEmpty")
	}
	var payload struct {
		APS    map[string]any             `json:"aps"`
		Rewind map[string]json.RawMessage `json:"rewind"`
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil || json.Unmarshal(body, &payload) != nil {
		return refuse(http.StatusBadRequest, "BadPayload")
	}

	dev, ok := a.lookupDevice(deviceToken)
	switch {
	case !ok:
		return refuse(http.StatusBadRequest, "BadDeviceToken")
	case dev.target != topic:
		return refuse(http.StatusBadRequest, "DeviceTokenNotForTopic")
	case !dev.unregistered.IsZero():
		return &apnsAnswer{status: http.StatusGone,
			body: apnsErrorBody{Reason: "Unregistered", Timestamp: dev.unregistered.UnixMilli()}}
	}

	var data map[string]string
	if payload.Rewind != nil {
		data = make(map[string]string, len(payload.Rewind))
		for k, v := range payload.Rewind {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(v)
			}
			data[k] = s
		}
	}
	a.journal.record(Push{
		Platform:    PlatformAPNs,
		DeviceToken: deviceToken,
		Topic:       topic,
		Bearer:      bearerToken,
		ID:          id,
		Headers:     r.Header.Clone(),
		Body:        body,
		Data:        data,
		APS:         payload.APS,
		Priority:    priority,
		PushType:    pushType,
		Expiration:  expiration,
		CollapseKey: collapseID,
		Received:    time.Now(),
	})
	return nil
}

// newUUID returns a random (version 4) UUID, as APNs generates for a request without apns-id.
func newUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
