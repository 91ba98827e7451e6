package pushsim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fcmBody is a messages:send body as the broker sends it (PROTOCOL.md §7).
func fcmBody(token string, data map[string]string) string {
	b, _ := json.Marshal(map[string]any{"message": map[string]any{
		"token": token,
		"data":  data,
		"android": map[string]any{
			"priority": "high", "ttl": "3600s", "collapse_key": "rewind",
		},
	}})
	return string(b)
}

// fcmData is message.data of exactly size bytes (keys and values).
func fcmData(size int) map[string]string {
	return map[string]string{"type": "data", "enc": "aes128gcm", "body": strings.Repeat("A", size-len("type")-len("data")-len("enc")-len("aes128gcm")-len("body"))}
}

func startFCM(t *testing.T) *FCM {
	f := NewFCM()
	t.Cleanup(f.Close)
	return f
}

func TestFCMSendRecordsPush(t *testing.T) {
	f := startFCM(t)
	bearer := f.Issue("proj-a")
	device := f.RegisterDevice("proj-a")
	data := map[string]string{"type": "data", "enc": "aes128gcm", "body": "c2VhbGVk"}

	before := time.Now()
	got := fcmSend(t, f, "proj-a", bearer, fcmBody(device, data))
	if got.status != http.StatusOK || got.proto != 2 {
		t.Fatalf("answer HTTP/%d %d %s, want HTTP/2 200", got.proto, got.status, got.body)
	}
	var name struct{ Name string }
	if err := json.Unmarshal([]byte(got.body), &name); err != nil {
		t.Fatalf("answer %s: %v", got.body, err)
	}
	if !regexp.MustCompile(`^projects/proj-a/messages/\S+$`).MatchString(name.Name) {
		t.Errorf("name = %q", name.Name)
	}

	p, err := f.Next(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Platform != PlatformFCM || p.DeviceToken != device || p.Project != "proj-a" || p.Bearer != bearer ||
		p.ID != name.Name || p.Priority != "high" || p.TTL != time.Hour || p.CollapseKey != "rewind" ||
		p.Received.Before(before) || p.Topic != "" || p.APS != nil {
		t.Errorf("push = %+v", p)
	}
	if fmt.Sprint(p.Data) != fmt.Sprint(data) {
		t.Errorf("data = %v, want %v", p.Data, data)
	}
	if string(p.Body) != fcmBody(device, data) || p.Headers.Get("Content-Type") != "application/json" {
		t.Errorf("body %s, headers %v", p.Body, p.Headers)
	}
	if pushes := f.Pushes(); len(pushes) != 1 || pushes[0].ID != p.ID {
		t.Errorf("Pushes() = %+v", pushes)
	}
	if n := f.Requests(); n != 1 {
		t.Errorf("Requests() = %d", n)
	}
}

func TestFCMAcceptsWhatTheSDKAndProtoJSONSend(t *testing.T) {
	f := startFCM(t)
	bearer := f.Issue("p")
	device := f.RegisterDevice("p")

	// lowerCamelCase names, upper-case enum, fractional duration as the SDK formats it.
	body := fmt.Sprintf(`{"message":{"token":%q,"data":{"type":"wake"},"android":{"collapseKey":"k","priority":"NORMAL","ttl":"1.500000000s","directBootOk":true}}}`, device)
	if got := fcmSend(t, f, "p", bearer, body); got.status != http.StatusOK {
		t.Fatalf("answer %d %s", got.status, got.body)
	}
	p := f.Pushes()[0]
	if p.Priority != "normal" || p.TTL != 1500*time.Millisecond || p.CollapseKey != "k" {
		t.Errorf("push = %+v", p)
	}

	// validate_only: answered like Google, checked, not recorded.
	body = fmt.Sprintf(`{"validate_only":true,"message":{"token":%q}}`, device)
	wantStatus(t, fcmSend(t, f, "p", bearer, body), 200, `{"name":"projects/p/messages/fake_message_id"}`)
	body = fmt.Sprintf(`{"validateOnly":true,"message":{"token":%q}}`, "gone")
	wantPrefix(t, fcmSend(t, f, "p", bearer, body), 404, `{"error":{"code":404`)
	if n := len(f.Pushes()); n != 1 {
		t.Errorf("%d pushes recorded, want 1", n)
	}
}

func TestFCMErrorAnswers(t *testing.T) {
	f := startFCM(t)
	bearer := f.Issue("proj-a")
	other := f.Issue("proj-b")
	revoked := f.Issue("proj-a")
	f.Revoke(revoked)
	device := f.RegisterDevice("proj-a")
	foreign := f.RegisterDevice("proj-b")
	gone := f.RegisterDevice("proj-a")
	f.Unregister(gone)
	ok := fcmBody(device, fcmData(100))

	const (
		unauthenticated = `{"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.","status":"UNAUTHENTICATED"}}`
		unregistered    = `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`
		senderMismatch  = `{"error":{"code":403,"message":"SenderId mismatch","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"SENDER_ID_MISMATCH"}]}}`
		tooBig          = `{"error":{"code":400,"message":"Android message is too big","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}`
		permission      = `{"error":{"code":403,"message":"Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/proj-a' (or it may not exist).","status":"PERMISSION_DENIED"}}`
		invalid         = `{"error":{"code":400,"message":"`
		noRecipient     = `{"error":{"code":400,"message":"Recipient of the message is not set.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message","description":"Recipient of the message is not set."}]},{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}`
		unknownName     = `{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"priority\" at 'message': Cannot find field.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message","description":"Invalid JSON payload received. Unknown name \"priority\" at 'message': Cannot find field."}]}]}}`
	)
	tests := []struct {
		name, bearer, body string
		status             int
		want               string // whole body, or its prefix when it ends in `"` (INVALID_ARGUMENT)
	}{
		{"no bearer", "", ok, 401, unauthenticated},
		{"unknown bearer", "ya29.made-up", ok, 401, unauthenticated},
		{"revoked bearer", revoked, ok, 401, unauthenticated},
		{"bearer of another project", other, ok, 403, permission},
		{"unregistered device", bearer, fcmBody(gone, nil), 404, unregistered},
		{"never registered device", bearer, fcmBody("not-a-device", nil), 404, unregistered},
		{"device of another project", bearer, fcmBody(foreign, nil), 403, senderMismatch},
		{"data of 4097 bytes", bearer, fcmBody(device, fcmData(4097)), 400, tooBig},
		{"unknown top-level field", bearer, `{"message":{"token":"x"},"priority":"high"}`, 400, invalid},
		{"unknown message field", bearer, `{"message":{"token":"x","ttl":"1s"}}`, 400, invalid},
		{"unknown android field", bearer, `{"message":{"token":"x","android":{"urgency":"high"}}}`, 400, invalid},
		{"number in data", bearer, `{"message":{"token":"x","data":{"n":1}}}`, 400, invalid},
		{"null in data", bearer, `{"message":{"token":"x","data":{"n":null}}}`, 400, invalid},
		{"reserved data key", bearer, `{"message":{"token":"x","data":{"google.x":"1"}}}`, 400, invalid},
		{"bad priority", bearer, `{"message":{"token":"x","android":{"priority":"urgent"}}}`, 400, invalid},
		{"ttl without unit", bearer, `{"message":{"token":"x","android":{"ttl":"30"}}}`, 400, invalid},
		{"negative ttl", bearer, `{"message":{"token":"x","android":{"ttl":"-1s"}}}`, 400, invalid},
		{"no token", bearer, `{"message":{"data":{"a":"b"}}}`, 400, noRecipient},
		{"unknown field, exactly", bearer, `{"message":{"token":"x","priority":"high"}}`, 400, unknownName},
		{"no message", bearer, `{}`, 400, invalid},
		{"not JSON", bearer, `<xml/>`, 400, invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fcmSend(t, f, "proj-a", tt.bearer, tt.body)
			if strings.HasSuffix(tt.want, `"`) {
				wantPrefix(t, got, tt.status, tt.want)
				var e struct{ Error struct{ Status string } }
				if json.Unmarshal([]byte(got.body), &e); e.Error.Status != "INVALID_ARGUMENT" {
					t.Errorf("status %q, want INVALID_ARGUMENT", e.Error.Status)
				}
			} else {
				wantStatus(t, got, tt.status, tt.want)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json; charset=UTF-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.status == 401 && got.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := len(f.Pushes()); n != 0 {
		t.Errorf("%d pushes recorded, want none", n)
	}
	if n := f.Requests(); n != len(tests) {
		t.Errorf("Requests() = %d, want %d", n, len(tests))
	}
}

func TestFCMDataLimit(t *testing.T) {
	f := startFCM(t)
	bearer := f.Issue("p")
	device := f.RegisterDevice("p")
	if got := fcmSend(t, f, "p", bearer, fcmBody(device, fcmData(FCMMaxData))); got.status != 200 {
		t.Errorf("%d bytes: answer %d %s", FCMMaxData, got.status, got.body)
	}
	if got := fcmSend(t, f, "p", bearer, fcmBody(device, fcmData(FCMMaxData+1))); got.status != 400 {
		t.Errorf("%d bytes: answer %d %s", FCMMaxData+1, got.status, got.body)
	}
}

func TestFCMRevokeAndUnregister(t *testing.T) {
	f := startFCM(t)
	bearer := f.Issue("p")
	device := f.RegisterDevice("p")
	if got := fcmSend(t, f, "p", bearer, fcmBody(device, nil)); got.status != 200 {
		t.Fatalf("answer %d %s", got.status, got.body)
	}
	f.Revoke(bearer)
	if got := fcmSend(t, f, "p", bearer, fcmBody(device, nil)); got.status != 401 {
		t.Errorf("revoked bearer: answer %d %s", got.status, got.body)
	}
	fresh := f.Issue("p")
	if !f.Unregister(device) || f.Unregister("never-issued") {
		t.Error("Unregister reports wrongly")
	}
	if got := fcmSend(t, f, "p", fresh, fcmBody(device, nil)); got.status != 404 {
		t.Errorf("unregistered device: answer %d %s", got.status, got.body)
	}
}

func TestFCMFailNext(t *testing.T) {
	f := startFCM(t)
	bearer := f.Issue("p")
	device := f.RegisterDevice("p")
	f.FailNext(1, FCMFault(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.").WithHeader("Retry-After", "1"))
	f.FailNext(2, FCMFault(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."))
	f.FailNext(1, Fault{Status: 502, Body: "<html><body>502 Bad Gateway</body></html>"})

	got := fcmSend(t, f, "p", bearer, fcmBody(device, nil))
	wantStatus(t, got, 429, `{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"QUOTA_EXCEEDED"}]}}`)
	if got.header.Get("Retry-After") != "1" {
		t.Errorf("429 headers %v", got.header)
	}
	for range 2 {
		wantPrefix(t, fcmSend(t, f, "p", bearer, fcmBody(device, nil)), 503, `{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"`)
	}
	// A fault comes before any validation: even a request with no bearer gets it.
	got = fcmSend(t, f, "p", "", "")
	wantStatus(t, got, 502, "<html><body>502 Bad Gateway</body></html>")
	if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("502 Content-Type %q", ct)
	}
	if got := fcmSend(t, f, "p", bearer, fcmBody(device, nil)); got.status != 200 {
		t.Errorf("after the faults: answer %d %s", got.status, got.body)
	}
	if n, pushes := f.Requests(), len(f.Pushes()); n != 5 || pushes != 1 {
		t.Errorf("Requests() = %d, %d pushes; want 5, 1", n, pushes)
	}
}

func TestFCMDelay(t *testing.T) {
	f := startFCM(t)
	bearer := f.Issue("p")
	device := f.RegisterDevice("p")
	const d = 50 * time.Millisecond
	f.Delay(d)
	start := time.Now()
	if got := fcmSend(t, f, "p", bearer, fcmBody(device, nil)); got.status != 200 {
		t.Fatalf("answer %d %s", got.status, got.body)
	}
	if elapsed := time.Since(start); elapsed < d {
		t.Errorf("answered after %v, want ≥ %v", elapsed, d)
	}

	// A client that gives up ends the wait; nothing is recorded.
	f.Delay(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL()+"/v1/projects/p/messages:send", strings.NewReader(fcmBody(device, nil)))
	req.Header.Set("Authorization", "Bearer "+bearer)
	if _, err := f.Client().Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delayed request: err = %v, want deadline exceeded", err)
	}
	if n := len(f.Pushes()); n != 1 {
		t.Errorf("%d pushes, want 1", n)
	}
}

func TestCloseEndsDelayedRequests(t *testing.T) {
	f := NewFCM()
	f.Delay(time.Hour)
	arrived := make(chan struct{})
	f.mu.Lock()
	f.admitted = func() { close(arrived) }
	f.mu.Unlock()
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(testContext(t), http.MethodPost, f.URL()+"/v1/projects/p/messages:send", strings.NewReader("{}"))
		resp, err := f.Client().Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %s", resp.Status)
		}
		errc <- err
	}()
	select { // the request is in the server: close under it
	case <-arrived:
	case <-testContext(t).Done():
		t.Fatal("request never arrived")
	}
	f.Close()
	f.Close() // idempotent
	if err := <-errc; err == nil {
		t.Error("request in Delay answered after Close")
	}
}

func TestFCMSpeaksHTTP1Too(t *testing.T) {
	f := startFCM(t)
	bearer := f.Issue("p")
	device := f.RegisterDevice("p")
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.CertPool()},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{}, // no h2
	}}
	defer c.CloseIdleConnections()
	req := newRequest(t, http.MethodPost, f.URL()+"/v1/projects/p/messages:send", fcmBody(device, nil))
	req.Header.Set("Authorization", "Bearer "+bearer)
	if got := do(t, c, req); got.status != 200 || got.proto != 1 {
		t.Errorf("HTTP/1.1: answer HTTP/%d %d %s", got.proto, got.status, got.body)
	}
}

func TestFCMConcurrentSends(t *testing.T) {
	f := startFCM(t)
	bearer := f.Issue("p")
	const n = 32
	var wg sync.WaitGroup
	for range n {
		device := f.RegisterDevice("p")
		wg.Go(func() {
			if got := fcmSend(t, f, "p", bearer, fcmBody(device, nil)); got.status != 200 {
				t.Errorf("answer %d %s", got.status, got.body)
			}
		})
	}
	wg.Wait()
	if got, reqs := len(f.Pushes()), f.Requests(); got != n || reqs != n {
		t.Errorf("%d pushes, %d requests; want %d", got, reqs, n)
	}
}
