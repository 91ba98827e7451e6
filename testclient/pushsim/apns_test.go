package pushsim

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const bundle = "org.example.rewind"

func startAPNs(t *testing.T) *APNs {
	a := NewAPNs()
	t.Cleanup(a.Close)
	return a
}

// apnsHeaders are the headers the broker sends for a user-visible wake (PROTOCOL.md §7).
func apnsHeaders(bearer string) map[string]string {
	return map[string]string{
		"authorization":    "bearer " + bearer,
		"apns-topic":       bundle,
		"apns-push-type":   "alert",
		"apns-priority":    "10",
		"apns-expiration":  "1900000000",
		"apns-collapse-id": "rewind-262000101",
	}
}

func with(h map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// apnsPayload is a JSON payload of exactly size bytes.
func apnsPayload(size int) string {
	const head, tail = `{"aps":{"mutable-content":1,"alert":{"title":"Rewind"}},"rewind":{"type":"data","enc":"aes128gcm","body":"`, `"}}`
	return head + strings.Repeat("A", size-len(head)-len(tail)) + tail
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestAPNsSendRecordsPush(t *testing.T) {
	a := startAPNs(t)
	bearer := a.Issue("TEAM123456")
	device := a.RegisterDevice(bundle)
	payload := `{"aps":{"mutable-content":1,"alert":{"title":"Rewind"}},"rewind":{"type":"data","enc":"aes128gcm","body":"c2VhbGVk","n":7}}`

	got := apnsSend(t, a, device, apnsHeaders(bearer), payload)
	if got.status != 200 || got.proto != 2 || got.body != "" {
		t.Fatalf("answer HTTP/%d %d %q, want HTTP/2 200 without body", got.proto, got.status, got.body)
	}
	id := got.header.Get("apns-id")
	if !uuidRE.MatchString(id) {
		t.Errorf("apns-id %q is not a v4 UUID", id)
	}

	p, err := a.Next(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Platform != PlatformAPNs || p.DeviceToken != device || p.Topic != bundle || p.Bearer != bearer ||
		p.ID != id || p.Priority != "10" || p.PushType != "alert" || !p.Expiration.Equal(time.Unix(1900000000, 0)) ||
		p.CollapseKey != "rewind-262000101" || string(p.Body) != payload || p.Project != "" {
		t.Errorf("push = %+v", p)
	}
	if p.Data["type"] != "data" || p.Data["enc"] != "aes128gcm" || p.Data["body"] != "c2VhbGVk" || p.Data["n"] != "7" {
		t.Errorf("data = %v", p.Data)
	}
	if p.APS["mutable-content"] != float64(1) {
		t.Errorf("aps = %v", p.APS)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(device) {
		t.Errorf("device token %q", device)
	}
	if parts := strings.Split(bearer, "."); len(parts) != 3 {
		t.Errorf("provider token %q is not JWT-shaped", bearer)
	}

	// A request's own apns-id is echoed; background pushes go at priority 5.
	const own = "eabeae54-14a8-11e5-b60b-1697f925ec7b"
	h := with(apnsHeaders(bearer), "apns-id", own, "apns-push-type", "background", "apns-priority", "5",
		"apns-expiration", "0", "apns-collapse-id", "")
	got = apnsSend(t, a, device, h, `{"aps":{"content-available":1}}`)
	if got.status != 200 || got.header.Get("apns-id") != own {
		t.Errorf("answer %d, apns-id %q; want 200, %s", got.status, got.header.Get("apns-id"), own)
	}
	p, _ = a.Next(testContext(t))
	if p.PushType != "background" || p.Priority != "5" || !p.Expiration.IsZero() || p.Data != nil {
		t.Errorf("background push = %+v", p)
	}
}

func TestAPNsErrorAnswers(t *testing.T) {
	a := startAPNs(t)
	bearer := a.Issue("TEAM")
	revoked := a.Issue("TEAM")
	a.Revoke(revoked)
	device := a.RegisterDevice(bundle)
	other := a.RegisterDevice("org.example.other")
	h := apnsHeaders(bearer)
	ok := `{"aps":{"alert":"x"}}`

	tests := []struct {
		name    string
		device  string
		header  map[string]string
		payload string
		status  int
		reason  string
	}{
		{"no provider token", device, with(h, "authorization", ""), ok, 403, "MissingProviderToken"},
		{"unknown provider token", device, with(h, "authorization", "bearer e30.e30.made-up"), ok, 403, "InvalidProviderToken"},
		{"revoked provider token", device, with(h, "authorization", "bearer "+revoked), ok, 403, "ExpiredProviderToken"},
		{"no topic", device, with(h, "apns-topic", ""), ok, 400, "MissingTopic"},
		{"malformed topic", device, with(h, "apns-topic", "org example"), ok, 400, "BadTopic"},
		{"topic of another app", other, h, ok, 400, "DeviceTokenNotForTopic"},
		{"unknown push type", device, with(h, "apns-push-type", "urgent"), ok, 400, "InvalidPushType"},
		{"priority 7", device, with(h, "apns-priority", "7"), ok, 400, "BadPriority"},
		{"background at priority 10", device, with(h, "apns-push-type", "background"), `{"aps":{"content-available":1}}`, 400, "BadPriority"},
		{"expiration not a number", device, with(h, "apns-expiration", "tomorrow"), ok, 400, "BadExpirationDate"},
		{"collapse id of 65 bytes", device, with(h, "apns-collapse-id", strings.Repeat("c", 65)), ok, 400, "BadCollapseId"},
		{"apns-id not a UUID", device, with(h, "apns-id", "42"), ok, 400, "BadMessageId"},
		{"payload of 4097 bytes", device, h, apnsPayload(4097), 413, "PayloadTooLarge"},
		{"empty payload", device, h, "", 400, "PayloadEmpty"},
		{"payload not an object", device, h, `["aps"]`, 400, "BadPayload"},
		{"payload null", device, h, `null`, 400, "BadPayload"},
		{"never registered device", strings.Repeat("0", 64), h, ok, 400, "BadDeviceToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := apnsSend(t, a, tt.device, tt.header, tt.payload)
			wantStatus(t, got, tt.status, `{"reason":"`+tt.reason+`"}`)
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if got.header.Get("apns-id") == "" {
				t.Error("error answer without apns-id")
			}
		})
	}

	t.Run("GET", func(t *testing.T) {
		req := newRequest(t, http.MethodGet, a.URL()+"/3/device/"+device, "")
		wantStatus(t, do(t, a.Client(), req), 405, `{"reason":"MethodNotAllowed"}`)
	})
	t.Run("bad path", func(t *testing.T) {
		req := newRequest(t, http.MethodPost, a.URL()+"/2/device/"+device, ok)
		wantStatus(t, do(t, a.Client(), req), 404, `{"reason":"BadPath"}`)
	})
	t.Run("no device token", func(t *testing.T) {
		wantStatus(t, apnsSend(t, a, "", h, ok), 400, `{"reason":"MissingDeviceToken"}`)
	})
	if n := len(a.Pushes()); n != 0 {
		t.Errorf("%d pushes recorded, want none", n)
	}
	if n, want := a.Requests(), len(tests)+3; n != want {
		t.Errorf("Requests() = %d, want %d", n, want)
	}
}

func TestAPNsLimits(t *testing.T) {
	a := startAPNs(t)
	bearer := a.Issue("TEAM")
	device := a.RegisterDevice(bundle)
	h := with(apnsHeaders(bearer), "apns-collapse-id", strings.Repeat("c", APNsMaxCollapseID))
	if got := apnsSend(t, a, device, h, apnsPayload(APNsMaxPayload)); got.status != 200 {
		t.Errorf("%d-byte payload, %d-byte collapse id: answer %d %s", APNsMaxPayload, APNsMaxCollapseID, got.status, got.body)
	}
	if got := apnsSend(t, a, device, h, apnsPayload(APNsMaxPayload+1)); got.status != 413 {
		t.Errorf("%d-byte payload: answer %d %s", APNsMaxPayload+1, got.status, got.body)
	}
	h = with(h, "apns-collapse-id", strings.Repeat("c", APNsMaxCollapseID+1))
	if got := apnsSend(t, a, device, h, apnsPayload(200)); got.status != 400 {
		t.Errorf("%d-byte collapse id: answer %d %s", APNsMaxCollapseID+1, got.status, got.body)
	}
}

func TestAPNsUnregisteredHasTimestamp(t *testing.T) {
	a := startAPNs(t)
	bearer := a.Issue("TEAM")
	device := a.RegisterDevice(bundle)
	before := time.Now().UnixMilli()
	if !a.Unregister(device) {
		t.Fatal("Unregister: not registered")
	}
	after := time.Now().UnixMilli()

	got := apnsSend(t, a, device, apnsHeaders(bearer), `{"aps":{"alert":"x"}}`)
	if got.status != 410 {
		t.Fatalf("answer %d %s, want 410", got.status, got.body)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(got.body), &body); err != nil {
		t.Fatal(err)
	}
	ts, _ := body["timestamp"].(float64)
	if len(body) != 2 || body["reason"] != "Unregistered" || int64(ts) < before || int64(ts) > after {
		t.Errorf("answer %s, want reason Unregistered and a timestamp in [%d, %d]", got.body, before, after)
	}
	if want := `{"reason":"Unregistered","timestamp":` + strconv.FormatInt(int64(ts), 10) + `}`; got.body != want {
		t.Errorf("answer %s, want %s", got.body, want)
	}
	// The same timestamp every time: it is when the device went away.
	if again := apnsSend(t, a, device, apnsHeaders(bearer), `{"aps":{"alert":"x"}}`); again.body != got.body {
		t.Errorf("second answer %s, first %s", again.body, got.body)
	}
}

func TestAPNsRevokedThenReissued(t *testing.T) {
	a := startAPNs(t)
	bearer := a.Issue("TEAM")
	device := a.RegisterDevice(bundle)
	a.Revoke(bearer)
	wantStatus(t, apnsSend(t, a, device, apnsHeaders(bearer), `{"aps":{}}`), 403, `{"reason":"ExpiredProviderToken"}`)
	if got := apnsSend(t, a, device, apnsHeaders(a.Issue("TEAM")), `{"aps":{}}`); got.status != 200 {
		t.Errorf("fresh token: answer %d %s", got.status, got.body)
	}
}

func TestAPNsFailNext(t *testing.T) {
	a := startAPNs(t)
	bearer := a.Issue("TEAM")
	device := a.RegisterDevice(bundle)
	a.FailNext(1, APNsFault(429, "TooManyRequests").WithHeader("Retry-After", "1"))
	a.FailNext(1, Fault{Status: 502, Body: "<html><head><title>502 Bad Gateway</title></head></html>"})

	got := apnsSend(t, a, device, apnsHeaders(bearer), `{"aps":{}}`)
	wantStatus(t, got, 429, `{"reason":"TooManyRequests"}`)
	if got.header.Get("Retry-After") != "1" {
		t.Errorf("429 headers %v", got.header)
	}
	got = apnsSend(t, a, device, apnsHeaders(bearer), `{"aps":{}}`)
	wantStatus(t, got, 502, "<html><head><title>502 Bad Gateway</title></head></html>")
	if json.Valid([]byte(got.body)) {
		t.Error("502 body is JSON; it should be what apns2 cannot parse")
	}
	if got := apnsSend(t, a, device, apnsHeaders(bearer), `{"aps":{}}`); got.status != 200 {
		t.Errorf("after the faults: answer %d %s", got.status, got.body)
	}
	if n := a.Requests(); n != 3 {
		t.Errorf("Requests() = %d, want 3", n)
	}
}

func TestAPNsRefusesHTTP1(t *testing.T) {
	a := startAPNs(t)
	tlsConf := &tls.Config{RootCAs: a.CertPool()}

	// A client that offers only http/1.1 cannot agree on a protocol.
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig: tlsConf,
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	defer c.CloseIdleConnections()
	req := newRequest(t, http.MethodPost, a.URL()+"/3/device/x", "{}")
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("HTTP/1.1 request answered %s", resp.Status)
	}

	// A client that offers no ALPN at all gets its connection closed, unanswered.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(a.URL(), "https://"), tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /3/device/x HTTP/1.1\r\nHost: apns\r\nContent-Length: 2\r\n\r\n{}")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(testWait))
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
		resp.Body.Close()
		t.Fatalf("HTTP/1.1 without ALPN answered %s", resp.Status)
	}
}
