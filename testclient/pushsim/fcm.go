package pushsim

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// FCM limits the fake enforces.
const (
	// FCMMaxData is FCM's limit on a data message: the bytes of all keys and values of
	// message.data together.
	FCMMaxData = 4096
	// fcmMaxRequest bounds the request body read; larger bodies get 413 as from Google's front end.
	fcmMaxRequest = 1 << 20

	fcmContentType    = "application/json; charset=UTF-8"
	fcmErrorType      = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestType    = "type.googleapis.com/google.rpc.BadRequest"
	fcmSendPathPrefix = "/v1/projects/"
	fcmSendPathSuffix = "/messages:send"
)

// FCM is a fake FCM HTTP v1 endpoint (https://fcm.googleapis.com/v1/projects/{project}/messages:send)
// served over HTTP/2 with TLS (HTTP/1.1 is accepted too, as Google does).
//
// A request is answered in this order: a queued Fault (FailNext); 401 UNAUTHENTICATED for a
// missing, unknown or revoked bearer; 403 PERMISSION_DENIED for a bearer issued for another
// project; 400 INVALID_ARGUMENT for a body FCM would refuse (unknown fields, non-string data
// values, reserved data keys, bad priority or ttl, no token, data over FCMMaxData bytes — "Android
// message is too big"); 404 UNREGISTERED for a device token that is not registered (never or no
// longer); 403 SENDER_ID_MISMATCH for a device token registered to another project; otherwise 200
// {"name":"projects/{project}/messages/{id}"} and the push is recorded. validate_only requests
// go through the same checks (device included), are answered with Google's
// "projects/{project}/messages/fake_message_id" and are not recorded.
//
// Topic and condition messages are not simulated (400).
type FCM struct {
	endpoint
}

// NewFCM starts a fake FCM server on loopback. Close it when done.
func NewFCM() *FCM { return newFCM(newJournal(), true) }

func newFCM(j *journal, ownsJournal bool) *FCM {
	f := &FCM{}
	f.platform, f.journal, f.ownsJournal = PlatformFCM, j, ownsJournal
	f.start(http.HandlerFunc(f.serve), func(s *httptest.Server) {
		s.TLS = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	})
	return f
}

// Issue mints an OAuth 2.0 access token for project, as the vendor's token service would hand
// out; it stays valid until Revoke.
func (f *FCM) Issue(project string) string {
	return f.issue(project, "ya29.pushsim-"+base64.RawURLEncoding.EncodeToString(randomBytes(32)))
}

// RegisterDevice mints an FCM registration token for an app of project, as a phone gets from
// FirebaseMessaging.getToken.
func (f *FCM) RegisterDevice(project string) string {
	token := base64.RawURLEncoding.EncodeToString(randomBytes(16)) + ":APA91b" +
		base64.RawURLEncoding.EncodeToString(randomBytes(100))
	return f.register(project, token)
}

// fcmAnswer is a refusal in FCM's error shape.
type fcmAnswer struct {
	status    int
	rpcStatus string
	message   string
	details   []any
	header    http.Header
}

func (a *fcmAnswer) write(w http.ResponseWriter) {
	for k, vs := range a.header {
		w.Header()[k] = vs
	}
	writeJSON(w, fcmContentType, a.status, fcmErrorBody(a.status, a.rpcStatus, a.message, a.details))
}

func (f *FCM) serve(w http.ResponseWriter, r *http.Request) {
	fault, ok := f.admit(r)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	if fault != nil {
		fault.write(w)
		return
	}
	p, ans := f.handle(r)
	if ans != nil {
		ans.write(w)
		return
	}
	writeJSON(w, fcmContentType, http.StatusOK, map[string]string{"name": p.ID})
}

func (f *FCM) handle(r *http.Request) (Push, *fcmAnswer) {
	project, ok := strings.CutPrefix(r.URL.Path, fcmSendPathPrefix)
	project, ok2 := strings.CutSuffix(project, fcmSendPathSuffix)
	if !ok || !ok2 || project == "" || strings.Contains(project, "/") {
		return Push{}, &fcmAnswer{status: http.StatusNotFound, rpcStatus: "NOT_FOUND",
			message: fmt.Sprintf("The requested URL %s was not found on this server.", r.URL.Path)}
	}
	if r.Method != http.MethodPost {
		return Push{}, &fcmAnswer{status: http.StatusMethodNotAllowed, rpcStatus: "INVALID_ARGUMENT",
			message: fmt.Sprintf("Method %s is not allowed for this resource.", r.Method)}
	}

	token, _ := cutPrefixFold(r.Header.Get("Authorization"), "Bearer ")
	owner, state := f.checkBearer(token)
	switch {
	case state != bearerValid:
		return Push{}, &fcmAnswer{status: http.StatusUnauthorized, rpcStatus: "UNAUTHENTICATED",
			message: "Request had invalid authentication credentials. Expected OAuth 2 access token, " +
				"login cookie or other valid authentication credential. " +
				"See https://developers.google.com/identity/sign-in/web/devconsole-project.",
			header: http.Header{"Www-Authenticate": {`Bearer realm="https://accounts.google.com/"`}}}
	case owner != project:
		return Push{}, &fcmAnswer{status: http.StatusForbidden, rpcStatus: "PERMISSION_DENIED",
			message: fmt.Sprintf("Permission 'cloudmessaging.messages.create' denied on resource "+
				"'//cloudresourcemanager.googleapis.com/projects/%s' (or it may not exist).", project)}
	}

	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, fcmMaxRequest))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Push{}, &fcmAnswer{status: http.StatusRequestEntityTooLarge, rpcStatus: "INVALID_ARGUMENT",
				message: "Request payload size exceeds the limit."}
		}
		panic(http.ErrAbortHandler)
	}
	msg, ans := parseFCM(body)
	if ans != nil {
		return Push{}, ans
	}
	dev, ok := f.lookupDevice(msg.token)
	switch {
	case !ok || !dev.unregistered.IsZero():
		return Push{}, &fcmAnswer{status: http.StatusNotFound, rpcStatus: "NOT_FOUND",
			message: "Requested entity was not found.", details: []any{fcmErrorDetail("UNREGISTERED")}}
	case dev.target != project:
		return Push{}, &fcmAnswer{status: http.StatusForbidden, rpcStatus: "PERMISSION_DENIED",
			message: "SenderId mismatch", details: []any{fcmErrorDetail("SENDER_ID_MISMATCH")}}
	}

	if msg.validateOnly {
		return Push{ID: "projects/" + project + "/messages/fake_message_id"}, nil
	}

	p := Push{
		Platform:    PlatformFCM,
		DeviceToken: msg.token,
		Project:     project,
		Bearer:      token,
		ID:          fmt.Sprintf("projects/%s/messages/0:%d%%%s", project, time.Now().UnixMicro(), hex.EncodeToString(randomBytes(8))),
		Headers:     r.Header.Clone(),
		Body:        body,
		Data:        msg.data,
		Priority:    msg.priority,
		TTL:         msg.ttl,
		CollapseKey: msg.collapseKey,
		Received:    time.Now(),
	}
	f.journal.record(p)
	return p, nil
}

// fcmMessage is what the fake keeps of a valid messages:send body.
type fcmMessage struct {
	validateOnly bool
	token        string
	data         map[string]string
	priority     string
	ttl          time.Duration
	collapseKey  string
}

// Fields FCM HTTP v1 knows, by object; proto JSON also accepts their lowerCamelCase spelling.
var (
	fcmRequestFields = []string{"message", "validate_only"}
	fcmMessageFields = []string{"name", "data", "notification", "android", "webpush", "apns",
		"fcm_options", "token", "topic", "condition"}
	fcmAndroidFields = []string{"collapse_key", "priority", "ttl", "restricted_package_name", "data",
		"notification", "fcm_options", "direct_boot_ok", "bandwidth_constrained_ok", "restricted_satellite_ok"}

	// Duration in proto JSON: seconds with up to nine fractional digits, suffix "s".
	protoDuration = regexp.MustCompile(`^(-?)(\d+)(?:\.(\d{1,9}))?s$`)
)

// parseFCM validates a messages:send body as FCM does for the fields the broker uses. Bodies in
// the plain shape senders use take parseFCMFast's single pass; everything else, every refusal
// included, parseFCMFull's.
func parseFCM(body []byte) (fcmMessage, *fcmAnswer) {
	if msg, ok := parseFCMFast(body); ok {
		return msg, nil
	}
	return parseFCMFull(body)
}

// parseFCMFast decodes body in one pass and reports ok only for a body that parseFCMFull
// accepts, with the same result: an object whose keys are the snake_case names FCM knows, with a
// non-empty token, data of strings within FCMMaxData and without reserved keys, a valid android
// priority and non-negative ttl, no topic or condition and no null anywhere it looks. Any doubt
// (lowerCamelCase names, nulls, other JSON types, numbers float64 cannot hold in fields it
// ignores…) is left to parseFCMFull, which alone words refusals.
func parseFCMFast(body []byte) (fcmMessage, bool) {
	var msg fcmMessage
	var top map[string]any
	if json.Unmarshal(body, &top) != nil {
		return msg, false
	}
	for k, v := range top {
		switch k {
		case "message":
		case "validate_only":
			b, ok := v.(bool)
			if !ok {
				return msg, false
			}
			msg.validateOnly = b
		default:
			return msg, false
		}
	}
	m, ok := top["message"].(map[string]any)
	if !ok {
		return msg, false
	}
	for k, v := range m {
		switch k {
		case "token":
			if msg.token, ok = v.(string); !ok {
				return msg, false
			}
		case "data":
			if msg.data, ok = fastData(v); !ok {
				return msg, false
			}
		case "android":
			if !fastAndroid(v, &msg) {
				return msg, false
			}
		case "topic", "condition":
			return msg, false
		default:
			if !containsString(fcmMessageFields, k) {
				return msg, false
			}
		}
	}
	return msg, msg.token != ""
}

func fastData(v any) (map[string]string, bool) {
	d, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	data := make(map[string]string, len(d))
	size := 0
	for k, v := range d {
		s, ok := v.(string)
		if !ok || reservedDataKey(k) {
			return nil, false
		}
		data[k] = s
		size += len(k) + len(s)
	}
	return data, size <= FCMMaxData
}

func fastAndroid(v any, msg *fcmMessage) bool {
	a, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range a {
		switch k {
		case "priority", "ttl", "collapse_key":
			s, ok := v.(string)
			if !ok {
				return false
			}
			switch k {
			case "priority":
				if msg.priority = strings.ToLower(s); msg.priority != "high" && msg.priority != "normal" {
					return false
				}
			case "ttl":
				if msg.ttl, ok = parseProtoDuration(s); !ok || msg.ttl < 0 {
					return false
				}
			default:
				msg.collapseKey = s
			}
		default:
			if !containsString(fcmAndroidFields, k) {
				return false
			}
		}
	}
	return true
}

// parseFCMFull validates a messages:send body as FCM does for the fields the broker uses, and
// words FCM's refusal of a body it does not accept.
func parseFCMFull(body []byte) (fcmMessage, *fcmAnswer) {
	var msg fcmMessage
	top, ans := fcmObject(body, "", fcmRequestFields)
	if ans != nil {
		return msg, ans
	}
	if raw, ok := top["validate_only"]; ok {
		if err := json.Unmarshal(raw, &msg.validateOnly); err != nil {
			return msg, invalidValue("validate_only", "TYPE_BOOL", raw)
		}
	}
	m, ans := fcmObject(top["message"], "message", fcmMessageFields)
	if ans != nil {
		return msg, ans
	}
	if m == nil {
		return msg, invalidArgument("Request contains an invalid argument.", "message", "Message is required.")
	}
	if _, ok := m["topic"]; ok {
		return msg, invalidArgument("pushsim: topic messages are not simulated", "message.topic", "not simulated")
	}
	if _, ok := m["condition"]; ok {
		return msg, invalidArgument("pushsim: condition messages are not simulated", "message.condition", "not simulated")
	}
	if raw, ok := m["token"]; ok {
		if err := json.Unmarshal(raw, &msg.token); err != nil {
			return msg, invalidValue("message.token", "TYPE_STRING", raw)
		}
	}
	if msg.token == "" {
		return msg, invalidArgument("Recipient of the message is not set.", "message", "Recipient of the message is not set.")
	}

	if raw, ok := m["data"]; ok && !isNull(raw) {
		var data map[string]json.RawMessage
		if err := json.Unmarshal(raw, &data); err != nil {
			return msg, invalidValue("message.data", "TYPE_MESSAGE", raw)
		}
		msg.data = make(map[string]string, len(data))
		size := 0
		for k, v := range data {
			var s string
			if err := json.Unmarshal(v, &s); err != nil || isNull(v) {
				return msg, invalidValue(fmt.Sprintf("message.data[%q].value", k), "TYPE_STRING", v)
			}
			if reservedDataKey(k) {
				return msg, invalidArgument("Invalid data payload key: "+k, "message.data", "Invalid data payload key: "+k)
			}
			msg.data[k] = s
			size += len(k) + len(s)
		}
		if size > FCMMaxData {
			return msg, &fcmAnswer{status: http.StatusBadRequest, rpcStatus: "INVALID_ARGUMENT",
				message: "Android message is too big", details: []any{fcmErrorDetail("INVALID_ARGUMENT")}}
		}
	}

	android, ans := fcmObject(m["android"], "message.android", fcmAndroidFields)
	if ans != nil {
		return msg, ans
	}
	if raw, ok := android["priority"]; ok && !isNull(raw) {
		var s string
		_ = json.Unmarshal(raw, &s)
		switch p := strings.ToLower(s); p {
		case "high", "normal":
			msg.priority = p
		default:
			return msg, invalidValue("message.android.priority",
				"type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority", raw)
		}
	}
	if raw, ok := android["ttl"]; ok && !isNull(raw) {
		var s string
		_ = json.Unmarshal(raw, &s)
		ttl, ok := parseProtoDuration(s)
		if !ok {
			return msg, invalidValue("message.android.ttl", "type.googleapis.com/google.protobuf.Duration", raw)
		}
		if ttl < 0 {
			return msg, invalidArgument("Request contains an invalid argument.", "message.android.ttl", "TTL must not be negative.")
		}
		msg.ttl = ttl
	}
	if raw, ok := android["collapse_key"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &msg.collapseKey); err != nil {
			return msg, invalidValue("message.android.collapse_key", "TYPE_STRING", raw)
		}
	}
	return msg, nil
}

// fcmObject decodes raw as a JSON object whose keys must be among known (snake_case, or their
// lowerCamelCase spelling). The result is keyed by the snake_case names; raw absent or null gives
// a nil map.
func fcmObject(raw json.RawMessage, at string, known []string) (map[string]json.RawMessage, *fcmAnswer) {
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		if at == "" {
			const msg = "Invalid JSON payload received. Unexpected token."
			return nil, malformed(msg, "", msg)
		}
		return nil, invalidValue(at, "TYPE_MESSAGE", raw)
	}
	out := make(map[string]json.RawMessage, len(obj))
	for k, v := range obj {
		name := snakeCase(k)
		if !containsString(known, name) {
			where := ""
			if at != "" {
				where = fmt.Sprintf(" at '%s'", at)
			}
			msg := fmt.Sprintf("Invalid JSON payload received. Unknown name %q%s: Cannot find field.", k, where)
			return nil, malformed(msg, at, msg)
		}
		out[name] = v
	}
	return out, nil
}

// invalidArgument is FCM's answer to a well-formed request it refuses: a BadRequest detail and
// an FcmError INVALID_ARGUMENT.
func invalidArgument(message, field, description string) *fcmAnswer {
	a := malformed(message, field, description)
	a.details = append(a.details, fcmErrorDetail("INVALID_ARGUMENT"))
	return a
}

// malformed is Google's front end's answer to a body that does not parse as the request type:
// a BadRequest detail only.
func malformed(message, field, description string) *fcmAnswer {
	return &fcmAnswer{status: http.StatusBadRequest, rpcStatus: "INVALID_ARGUMENT", message: message,
		details: []any{badRequestDetail{Type: badRequestType,
			FieldViolations: []fieldViolation{{Field: field, Description: description}}}}}
}

func invalidValue(field, typ string, raw json.RawMessage) *fcmAnswer {
	msg := fmt.Sprintf("Invalid value at '%s' (%s), %s", field, typ, bytes.TrimSpace(raw))
	return malformed(msg, field, msg)
}

// reservedDataKey reports keys FCM refuses in message.data.
func reservedDataKey(k string) bool {
	switch k {
	case "from", "message_type":
		return true
	}
	return strings.HasPrefix(k, "google.") || strings.HasPrefix(k, "gcm.")
}

func parseProtoDuration(s string) (time.Duration, bool) {
	m := protoDuration.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	secs, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil || secs > 315576000000 || secs > int64((1<<63-1)/time.Second) {
		return 0, false
	}
	d := time.Duration(secs) * time.Second
	if m[3] != "" {
		frac, _ := strconv.Atoi((m[3] + "000000000")[:9])
		d += time.Duration(frac)
	}
	if m[1] == "-" {
		d = -d
	}
	return d, true
}

// snakeCase turns lowerCamelCase into snake_case; snake_case is unchanged.
func snakeCase(s string) string {
	var b strings.Builder
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			b.WriteByte('_')
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// The JSON shape of FCM's errors (google.rpc.Status), field order as Google sends it.
type fcmErrorEnvelope struct {
	Error fcmStatus `json:"error"`
}

type fcmStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Status  string `json:"status"`
	Details []any  `json:"details,omitempty"`
}

type fcmErrorDetailBody struct {
	Type      string `json:"@type"`
	ErrorCode string `json:"errorCode"`
}

type badRequestDetail struct {
	Type            string           `json:"@type"`
	FieldViolations []fieldViolation `json:"fieldViolations"`
}

type fieldViolation struct {
	Field       string `json:"field,omitempty"`
	Description string `json:"description"`
}

func fcmErrorBody(status int, rpcStatus, message string, details []any) fcmErrorEnvelope {
	return fcmErrorEnvelope{Error: fcmStatus{Code: status, Message: message, Status: rpcStatus, Details: details}}
}

func fcmErrorDetail(code string) fcmErrorDetailBody {
	return fcmErrorDetailBody{Type: fcmErrorType, ErrorCode: code}
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// cutPrefixFold is strings.CutPrefix with a case-insensitive prefix.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
