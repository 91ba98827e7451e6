package broker

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
)

// tokenWorld is a pushWorld with the push-token endpoint mounted on a public listener, as
// cmd/broker mounts it next to /rewind.
type tokenWorld struct {
	*pushWorld
	public *httptest.Server
}

func newTokenWorld(t *testing.T) *tokenWorld {
	t.Helper()
	w := &tokenWorld{pushWorld: newPushWorld(t)}
	w.public = mountPushToken(t, w.srv)
	return w
}

func mountPushToken(t *testing.T, srv *Server) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/rewind", srv)
	mux.Handle(PushTokenRoute, srv.PushTokenHandler())
	public := httptest.NewServer(mux)
	t.Cleanup(public.Close)
	return public
}

// attachSigned attaches terminal id (already registered) for FCM with sigKey (nil: none), goes
// idle and drops the socket, as a phone going to the background. It returns the device token.
func (w *tokenWorld) attachSigned(t *testing.T, id uint32, password string, sigKey []byte) string {
	t.Helper()
	device := w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)
	c, err := testclient.Dial(ctx(t), w.config(id, password))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Attach(ctx(t), testclient.AttachOptions{URL: w.tokenURL("fcm"), Token: device, Platform: "fcm", SigKey: sigKey}); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if err := c.Idle(ctx(t)); err != nil {
		t.Fatalf("idle: %v", err)
	}
	c.Abort()
	w.waitClosed()
	return device
}

// update posts body for terminal id and returns the HTTP status (200 on success) and reason.
func (w *tokenWorld) update(t *testing.T, id uint32, body []byte) (int, string) {
	t.Helper()
	err := testclient.UpdatePushToken(ctx(t), nil, w.public.URL, id, body)
	if err == nil {
		return http.StatusOK, ""
	}
	var te *testclient.TokenUpdateError
	if !errors.As(err, &te) {
		t.Fatalf("update: %v", err)
	}
	return te.Status, te.Reason
}

func (w *tokenWorld) attach(t *testing.T, id uint32) registry.Attach {
	t.Helper()
	a, err := w.store.GetAttach(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sign(t *testing.T, key crypto.Signer, id uint32, token string, ts time.Time) []byte {
	t.Helper()
	body, err := testclient.SignTokenUpdate(key, id, token, ts)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// signDER signs as Android Keystore's Signature("SHA256withECDSA") does: ASN.1 DER.
func signDER(t *testing.T, key *ecdsa.PrivateKey, id uint32, token string, ts time.Time) []byte {
	t.Helper()
	digest := sha256.Sum256(testclient.TokenUpdateMessage(id, token, ts.Unix()))
	der, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return tokenBody(t, testclient.TokenUpdate{Token: token, Timestamp: ts.Unix(), Signature: base64.RawURLEncoding.EncodeToString(der)})
}

func tokenBody(t *testing.T, u testclient.TokenUpdate) []byte {
	t.Helper()
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func genKey(t *testing.T, kind string) (crypto.Signer, []byte) {
	t.Helper()
	key, pub, err := testclient.GenerateSigningKey(kind)
	if err != nil {
		t.Fatal(err)
	}
	return key, pub
}

func metricValue(t *testing.T, srv *Server, series string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.Metrics().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			return v
		}
	}
	return ""
}

// TestPushTokenUpdate: a signed update replaces the device token (ES256 as r‖s and as DER,
// Ed25519), and the next push goes to the new token.
func TestPushTokenUpdate(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind string
		der  bool
	}{
		{"es256 r||s", testclient.SigningES256, false},
		{"es256 DER", testclient.SigningES256, true},
		{"ed25519", testclient.SigningEd25519, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t)
			w.addTerminal(bob, "b")
			key, pub := genKey(t, tc.kind)
			old := w.attachSigned(t, bob, "b", pub)
			device := w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)

			w.clock.Advance(time.Hour) // TokenUpdated must move to the broker's clock
			now := w.clock.Now()
			body := sign(t, key, bob, device, now)
			if tc.der {
				body = signDER(t, key.(*ecdsa.PrivateKey), bob, device, now)
			}
			if status, reason := w.update(t, bob, body); status != http.StatusOK {
				t.Fatalf("update: %d %s", status, reason)
			}
			a := w.attach(t, bob)
			if a.Token != device || !a.TokenUpdated.Equal(now) || a.Invalid || !reflect.DeepEqual(a.SigKey, pub) {
				t.Fatalf("attach after update: %v, updated %v", a, a.TokenUpdated)
			}

			w.publishText(t, bob, 2620009, "to the new phone token")
			p, err := w.providers.Next(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if p.DeviceToken != device {
				t.Fatalf("push to %q, want the new token %q (old %q)", p.DeviceToken, device, old)
			}

			logs := w.logs.String()
			if !strings.Contains(logs, `"msg":"push token updated"`) || !strings.Contains(logs, registry.RedactToken(device)) {
				t.Fatalf("no redacted log line for the update:\n%s", logs)
			}
			if strings.Contains(logs, device) {
				t.Fatal("the new device token was logged in clear")
			}
			if v := metricValue(t, w.srv, `rewind_push_token_updates_total{result="ok"}`); v != "1" {
				t.Fatalf("ok counter %q, want 1", v)
			}
			if evs := w.srv.Events(0, bob, []string{EventPushTokenUpdated}, 0); len(evs) != 1 {
				t.Fatalf("push_token_updated events: %v", evs)
			}
		})
	}
}

// TestPushTokenUpdateWakesPending: the provider said the old token is gone (attach invalid,
// texts waiting); a signed update clears Invalid and wakes the terminal at the new token.
func TestPushTokenUpdateWakesPending(t *testing.T) {
	w := newTokenWorld(t)
	w.addTerminal(bob, "b")
	key, pub := genKey(t, testclient.SigningES256)
	old := w.attachSigned(t, bob, "b", pub)
	w.providers.Unregister(old)
	if res := w.publishText(t, bob, 2620009, "waiting"); res["push"] != WakeTokenInvalid {
		t.Fatalf("publish to an unregistered token: %v", res)
	}
	if a := w.attach(t, bob); !a.Invalid {
		t.Fatalf("attach not marked invalid: %v", a)
	}

	device := w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)
	if status, reason := w.update(t, bob, sign(t, key, bob, device, w.clock.Now())); status != http.StatusOK {
		t.Fatalf("update: %d %s", status, reason)
	}
	if a := w.attach(t, bob); a.Invalid || a.InvalidReason != "" || a.Token != device {
		t.Fatalf("attach after update: %v", a)
	}
	p, err := w.providers.Next(ctx(t))
	if err != nil || p.DeviceToken != device {
		t.Fatalf("no wake at the new token: %v %v", p.DeviceToken, err)
	}
	b := w.dial(bob, "b")
	if m, _, err := b.RecvText(ctx(t)); err != nil || m.Text != "waiting" {
		t.Fatalf("stored text after the wake: %+v %v", m, err)
	}
}

// TestPushTokenRefusals: each refusal has its status and reason and leaves the attach as it
// was.
func TestPushTokenRefusals(t *testing.T) {
	w := newTokenWorld(t)
	w.addTerminal(bob, "b")
	w.addTerminal(bob2, "b2")
	w.addTerminal(alice, "a")
	const stranger = 262000999 // never registered
	key, pub := genKey(t, testclient.SigningES256)
	other, _ := genKey(t, testclient.SigningES256)
	w.attachSigned(t, bob, "b", pub)
	w.attachSigned(t, bob2, "b2", nil) // attached without a sigkey; alice never attached
	device := w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)

	// One update accepted first, so that "replayed" has something to replay.
	first := sign(t, key, bob, device, w.clock.Now())
	if status, reason := w.update(t, bob, first); status != http.StatusOK {
		t.Fatalf("first update: %d %s", status, reason)
	}
	firstTS := w.clock.Now()

	validAt := func(ts time.Time, token string) []byte { return sign(t, key, bob, token, ts) }
	withSig := func(sig string) []byte {
		return tokenBody(t, testclient.TokenUpdate{Token: device, Timestamp: w.clock.Now().Unix(), Signature: sig})
	}
	b64 := base64.RawURLEncoding.EncodeToString
	cases := []struct {
		name   string
		id     uint32
		body   func() []byte
		status int
		reason string // exact, or a prefix when it ends with "*"
	}{
		{"replayed (same body again)", bob, func() []byte { return first }, 401, "replayed"},
		{"older timestamp than the last, within the window", bob, func() []byte { return validAt(firstTS.Add(-time.Second), device) }, 401, "replayed"},
		{"stale (6 minutes old)", bob, func() []byte { return validAt(w.clock.Now().Add(-6*time.Minute), device) }, 401, "stale or future timestamp"},
		{"future (6 minutes ahead)", bob, func() []byte { return validAt(w.clock.Now().Add(6*time.Minute), device) }, 401, "stale or future timestamp"},
		{"signed by another key", bob, func() []byte { return sign(t, other, bob, device, w.clock.Now()) }, 401, "bad signature"},
		{"signed for another terminal", bob, func() []byte { return sign(t, key, bob2, device, w.clock.Now()) }, 401, "bad signature"},
		{"signed for another token", bob, func() []byte {
			var u testclient.TokenUpdate
			json.Unmarshal(validAt(w.clock.Now(), device), &u)
			u.Token = device + "x"
			return tokenBody(t, u)
		}, 401, "bad signature"},
		{"empty signature", bob, func() []byte { return withSig("") }, 401, "bad signature"},
		{"no signature field", bob, func() []byte {
			return []byte(fmt.Sprintf(`{"token":%q,"timestamp":%d}`, device, w.clock.Now().Unix()))
		}, 401, "bad signature"},
		{"63-byte signature", bob, func() []byte { return withSig(b64(make([]byte, 63))) }, 401, "bad signature"},
		{"65-byte signature", bob, func() []byte { return withSig(b64(make([]byte, 65))) }, 401, "bad signature"},
		{"zero r||s", bob, func() []byte { return withSig(b64(make([]byte, 64))) }, 401, "bad signature"},
		{"padded base64", bob, func() []byte {
			var u testclient.TokenUpdate
			json.Unmarshal(validAt(w.clock.Now(), device), &u)
			u.Signature = base64.URLEncoding.EncodeToString(mustB64(t, u.Signature)) + "=" // never valid unpadded
			return tokenBody(t, u)
		}, 401, "bad signature"},
		{"standard base64 alphabet", bob, func() []byte { return withSig(strings.Repeat("+/", 43)) }, 401, "bad signature"},
		{"no sigkey attached", bob2, func() []byte { return sign(t, key, bob2, device, w.clock.Now()) }, 403, "no signing key registered; re-attach with sigkey"},
		{"never attached", alice, func() []byte { return sign(t, key, alice, device, w.clock.Now()) }, 403, "no signing key registered; re-attach with sigkey"},
		{"unknown terminal", stranger, func() []byte { return sign(t, key, stranger, device, w.clock.Now()) }, 404, "no such terminal"},
		{"terminal id 0", 0, func() []byte { return validAt(w.clock.Now(), device) }, 400, `"0" is not a terminal id*`},
		{"empty token", bob, func() []byte { return validAt(w.clock.Now(), "") }, 400, "token is empty"},
		{"token with a space", bob, func() []byte { return validAt(w.clock.Now(), "abc def") }, 400, "token has a byte outside printable ASCII*"},
		{"token with non-ASCII", bob, func() []byte { return validAt(w.clock.Now(), "jeton-é") }, 400, "token has a byte outside printable ASCII*"},
		{"token of 4097 bytes", bob, func() []byte { return validAt(w.clock.Now(), strings.Repeat("a", 4097)) }, 400, "token of 4097 bytes, limit 4096"},
		{"body over 8 KiB", bob, func() []byte { return validAt(w.clock.Now(), strings.Repeat("a", 9000)) }, 400, "body: http: request body too large"},
		{"unknown field", bob, func() []byte {
			return []byte(fmt.Sprintf(`{"token":%q,"timestamp":%d,"signature":"AA","platform":"fcm"}`, device, w.clock.Now().Unix()))
		}, 400, `body: json: unknown field "platform"`},
		{"missing timestamp", bob, func() []byte { return []byte(fmt.Sprintf(`{"token":%q,"signature":"AA"}`, device)) }, 400, "body: timestamp is required"},
		{"fractional timestamp", bob, func() []byte {
			return []byte(fmt.Sprintf(`{"token":%q,"timestamp":%d.5,"signature":"AA"}`, device, w.clock.Now().Unix()))
		}, 400, "body: json: cannot unmarshal*"},
		{"string timestamp", bob, func() []byte {
			return []byte(fmt.Sprintf(`{"token":%q,"timestamp":"%d","signature":"AA"}`, device, w.clock.Now().Unix()))
		}, 400, "body: json: cannot unmarshal*"},
		{"two JSON values", bob, func() []byte { return append(validAt(w.clock.Now(), device), []byte(` {}`)...) }, 400, "body: more than one JSON value"},
		{"not JSON", bob, func() []byte { return []byte("token=abc") }, 400, "body: invalid character*"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.clock.Advance(PushTokenWindow) // a fresh rate-limit window for every case
			var before registry.Attach
			if tc.id != 0 {
				before, _ = w.store.GetAttach(context.Background(), tc.id)
			}
			status, reason := w.update(t, tc.id, tc.body())
			want, prefix := strings.CutSuffix(tc.reason, "*")
			if status != tc.status || (prefix && !strings.HasPrefix(reason, want)) || (!prefix && reason != want) {
				t.Fatalf("got %d %q, want %d %q", status, reason, tc.status, tc.reason)
			}
			if tc.id != 0 {
				after, _ := w.store.GetAttach(context.Background(), tc.id)
				if !reflect.DeepEqual(before, after) {
					t.Fatalf("attach changed by a refused update:\nbefore %v\nafter  %v", before, after)
				}
			}
		})
	}
	if a := w.attach(t, bob); a.Token != device {
		t.Fatalf("bob's token %v, want the one of the first update", a)
	}
	for result, want := range map[string]string{"ok": "1", "replayed": "2", "stale": "2", "bad_signature": "10", "no_sigkey": "2", "invalid": "12", "rate_limited": "0"} {
		if v := metricValue(t, w.srv, fmt.Sprintf(`rewind_push_token_updates_total{result=%q}`, result)); v != want {
			t.Errorf("counter %s = %q, want %s", result, v, want)
		}
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPushTokenRateLimit: the limits per terminal and per address are exact, answered 429 with
// Retry-After, and refused requests change nothing.
func TestPushTokenRateLimit(t *testing.T) {
	w := newTokenWorld(t)
	w.addTerminal(bob, "b")
	key, pub := genKey(t, testclient.SigningEd25519)
	w.attachSigned(t, bob, "b", pub)

	var last string
	for i := range DefaultPushTokenPerTerminal {
		w.clock.Advance(time.Second) // timestamps strictly increase
		last = w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)
		if status, reason := w.update(t, bob, sign(t, key, bob, last, w.clock.Now())); status != http.StatusOK {
			t.Fatalf("update %d of %d: %d %s", i+1, DefaultPushTokenPerTerminal, status, reason)
		}
	}
	before := w.attach(t, bob)
	w.clock.Advance(time.Second)
	err := testclient.UpdatePushToken(ctx(t), nil, w.public.URL, bob, sign(t, key, bob, "one-too-many", w.clock.Now()))
	var te *testclient.TokenUpdateError
	if !errors.As(err, &te) || te.Status != http.StatusTooManyRequests || te.RetryAfter <= 0 || te.RetryAfter > PushTokenWindow {
		t.Fatalf("update past the limit: %v", err)
	}
	if after := w.attach(t, bob); !reflect.DeepEqual(before, after) || after.Token != last {
		t.Fatalf("attach changed by a rate-limited update:\nbefore %v\nafter  %v", before, after)
	}
	if v := metricValue(t, w.srv, `rewind_push_token_updates_total{result="rate_limited"}`); v != "1" {
		t.Fatalf("rate_limited counter %q", v)
	}
	w.clock.Advance(te.RetryAfter)
	if status, reason := w.update(t, bob, sign(t, key, bob, "after-the-window", w.clock.Now())); status != http.StatusOK {
		t.Fatalf("after Retry-After: %d %s", status, reason)
	}

	// Per address: requests for many terminal ids from one address.
	w.clock.Advance(PushTokenWindow)
	for i := range DefaultPushTokenPerAddress {
		id := uint32(262100000 + i)
		if status, _ := w.update(t, id, sign(t, key, id, "x", w.clock.Now())); status != http.StatusNotFound {
			t.Fatalf("request %d: %d, want 404", i+1, status)
		}
	}
	if status, _ := w.update(t, bob, sign(t, key, bob, "from-a-busy-address", w.clock.Now())); status != http.StatusTooManyRequests {
		t.Fatalf("request past the address limit: %d, want 429", status)
	}
}

// TestPushTokenReplayAfterRestart: the last accepted timestamp is durable, so a new Server over
// the same store still refuses the replay.
func TestPushTokenReplayAfterRestart(t *testing.T) {
	w := newTokenWorld(t)
	w.addTerminal(bob, "b")
	key, pub := genKey(t, testclient.SigningES256)
	w.attachSigned(t, bob, "b", pub)
	device := w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)
	body := sign(t, key, bob, device, w.clock.Now())
	if status, reason := w.update(t, bob, body); status != http.StatusOK {
		t.Fatalf("update: %d %s", status, reason)
	}

	pc := w.srv.pushCfg
	restarted, err := New(Config{Clock: w.clock, Logger: w.srv.log, Push: &pc}, w.store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Shutdown(context.Background()) })
	w.public = mountPushToken(t, restarted)
	before := w.attach(t, bob)
	if status, reason := w.update(t, bob, body); status != http.StatusUnauthorized || reason != "replayed" {
		t.Fatalf("replay after restart: %d %q", status, reason)
	}
	if after := w.attach(t, bob); !reflect.DeepEqual(before, after) {
		t.Fatalf("attach changed by the replay:\nbefore %v\nafter  %v", before, after)
	}
	w.clock.Advance(time.Second)
	if status, reason := w.update(t, bob, sign(t, key, bob, device+"-2", w.clock.Now())); status != http.StatusOK {
		t.Fatalf("a later update after restart: %d %s", status, reason)
	}
}

// TestPushTokenPushDisabled: without push the endpoint answers 503.
func TestPushTokenPushDisabled(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(bob, "b")
	public := mountPushToken(t, h.srv)
	key, _ := genKey(t, testclient.SigningEd25519)
	err := testclient.UpdatePushToken(ctx(t), nil, public.URL, bob, sign(t, key, bob, "tok", h.clock.Now()))
	var te *testclient.TokenUpdateError
	if !errors.As(err, &te) || te.Status != http.StatusServiceUnavailable {
		t.Fatalf("push disabled: %v", err)
	}
}

func TestLimiterAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:5555":             "192.0.2.7",
		"[::ffff:192.0.2.7]:5555":    "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64",
		"not an address":             "not an address",
		"[2001:db8:1:3::1%eth0]:443": "2001:db8:1:3::/64",
	} {
		if got := limiterAddr(in); got != want {
			t.Errorf("limiterAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
