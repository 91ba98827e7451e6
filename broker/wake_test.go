package broker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
	"github.com/rewind-broker/rewind/tokensvc"
)

// pushWorld is a broker with push enabled, the fake providers, a fake vendor token service and
// the real token-service client.
type pushWorld struct {
	*harness
	providers *pushsim.Providers
	vendor    *httptest.Server
	vendorReq atomic.Int64
	tokens    *tokensvc.Client
	// current credentials the vendor hands out, per platform
	mu       sync.Mutex
	fcmToken string
	apnsJWT  string
	down     atomic.Bool
}

const (
	fcmProject = "rewind-dmr-app"
	apnsTeam   = "TEAM123456"
	apnsTopic  = "com.example.dmr"
)

func newPushWorld(t testing.TB, mutate ...func(*PushConfig)) *pushWorld {
	t.Helper()
	w := &pushWorld{providers: pushsim.New()}
	t.Cleanup(w.providers.Close)
	w.fcmToken = w.providers.FCM.Issue(fcmProject)
	w.apnsJWT = w.providers.APNs.Issue(apnsTeam)
	w.vendor = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.vendorReq.Add(1)
		if w.down.Load() {
			http.Error(rw, "down", http.StatusServiceUnavailable)
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/token/fcm":
			json.NewEncoder(rw).Encode(tokensvc.Credential{Type: tokensvc.TypeFCM, Project: fcmProject, Token: w.fcmToken, Expires: 3600})
		case "/token/apns":
			json.NewEncoder(rw).Encode(tokensvc.Credential{Type: tokensvc.TypeAPNs, Topic: apnsTopic, Token: w.apnsJWT, Expires: 3000, Environment: "production"})
		default:
			http.NotFound(rw, r)
		}
	}))
	t.Cleanup(w.vendor.Close)
	var err error
	clock := newFakeClock()
	w.tokens, err = tokensvc.NewClient(tokensvc.ClientConfig{Policy: tokensvc.URLPolicy{AllowInsecure: true}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.tokens.Close() })
	// A short send deadline: the SDK retries 503 internally for seconds otherwise.
	fcm, err := NewFCMSender(FCMConfig{Endpoint: w.providers.FCM.URL() + "/v1", Transport: w.providers.FCM.Client().Transport, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	apns, err := NewAPNsSender(APNsConfig{ProductionHost: w.providers.APNs.URL(), DevelopmentHost: w.providers.APNs.URL(), Transport: w.providers.APNs.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	pc := &PushConfig{
		Tokens:  w.tokens,
		Senders: map[Platform]Sender{PlatformFCM: fcm, PlatformAPNs: apns},
		Policy:  tokensvc.URLPolicy{AllowInsecure: true},
	}
	for _, m := range mutate {
		m(pc)
	}
	w.harness = newHarness(t, func(c *Config) { c.Push = pc; c.Clock = clock })
	return w
}

func (w *pushWorld) tokenURL(platform string) string {
	return w.vendor.URL + "/token/" + platform + "?code=s3cret-code"
}

// phone attaches a terminal for platform, goes idle and drops its socket.
func (w *pushWorld) phoneGoneIdle(t testing.TB, id uint32, password, platform string, keys *testclient.PushKeyPair) string {
	t.Helper()
	target := fcmProject
	pf := pushsim.PlatformFCM
	if platform == "apns" {
		target, pf = apnsTopic, pushsim.PlatformAPNs
	}
	device := w.providers.RegisterDevice(pf, target)
	c, err := testclient.Dial(ctx(t), w.config(id, password))
	if err != nil {
		t.Fatal(err)
	}
	opt := testclient.AttachOptions{URL: w.tokenURL(platform), Token: device, Platform: platform, Keys: keys, Name: "phone"}
	if platform == "apns" {
		opt.Topic = apnsTopic
	}
	if err := c.Attach(ctx(t), opt); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if err := c.Idle(ctx(t)); err != nil {
		t.Fatalf("idle: %v", err)
	}
	c.Abort()
	w.waitClosed()
	return device
}

func (w *pushWorld) publishText(t testing.TB, to uint32, from uint32, text string) map[string]any {
	t.Helper()
	data, _ := protocol.TextMessage{Source: from, Destination: to, Text: text}.Encode()
	body := protocol.Datagram{Type: protocol.TypeMessageText, Data: data}.MustEncode()
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/terminals/%d/datagrams", w.admin.URL, to), strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		t.Fatalf("publish: %d %v", resp.StatusCode, out)
	}
	return out
}

func decodeBody(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("push body is not base64url: %v", err)
	}
	return b
}

func testWakeCycle(t *testing.T, platform string) {
	w := newPushWorld(t)
	w.addTerminal(alice, "a")
	w.addTerminal(bob, "b")
	keys, err := testclient.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	device := w.phoneGoneIdle(t, bob, "b", platform, keys)

	a := w.dial(alice, "a")
	texts := []string{"one", "two", "three"}
	for _, text := range texts {
		if err := a.SendText(ctx(t), bob, text); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.KeepAliveNow(ctx(t)); err != nil { // the texts are stored: no error came back
		t.Fatal(err)
	}
	if _, ok := a.TryRecv(); ok {
		t.Fatal("sender got an answer for a stored text")
	}
	res := w.publishText(t, bob, 2620009, "four (from the backend)")
	if res["state"] != "offline" || res["push"] != WakeAlreadyPending || res["sequence"] != float64(4) {
		t.Fatalf("publish answer: %v", res)
	}

	// Exactly one push, with the vendor's bearer, carrying the first text sealed for bob.
	p, err := w.providers.Next(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.DeviceToken != device {
		t.Fatalf("push to %q, want %q", p.DeviceToken, device)
	}
	wantBearer := w.fcmToken
	if platform == "apns" {
		wantBearer = w.apnsJWT
		if p.Topic != apnsTopic || p.PushType != "alert" || p.Priority != "10" {
			t.Fatalf("apns headers: topic %q type %q priority %q", p.Topic, p.PushType, p.Priority)
		}
	} else if p.Priority != "high" || p.TTL <= 0 {
		t.Fatalf("fcm android: priority %q ttl %v", p.Priority, p.TTL)
	}
	if p.Bearer != wantBearer {
		t.Fatalf("bearer %q, want the vendor's %q", p.Bearer, wantBearer)
	}
	if p.Data["type"] != "data" || p.Data["enc"] != "aes128gcm" {
		t.Fatalf("push data: %v", p.Data)
	}
	plain, err := keys.Open(decodeBody(t, p.Data["body"]))
	if err != nil {
		t.Fatalf("push body does not open with bob's key: %v", err)
	}
	d, err := protocol.Decode(plain)
	if err != nil {
		t.Fatal(err)
	}
	m, err := protocol.DecodeTextMessage(d.Data)
	if err != nil || m.Text != "one" || d.Flags&protocol.FlagBuffering == 0 || d.Number != 1 {
		t.Fatalf("sealed datagram: %v %+v %v", d, m, err)
	}
	if n := w.vendorReq.Load(); n != 1 {
		t.Fatalf("token service asked %d times, want 1", n)
	}

	// Bob reconnects (as the push makes the app do) and gets everything, in order, with Buffering.
	b := w.dial(bob, "b", func(c *testclient.Config) { c.AutoAck = true })
	want := append(texts, "four (from the backend)")
	for i, text := range want {
		m, d, err := b.RecvText(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if m.Text != text || d.Flags&protocol.FlagBuffering == 0 || d.Number != uint32(i+1) {
			t.Fatalf("delivery %d: %q flags %d number %d", i, m.Text, d.Flags, d.Number)
		}
	}
	if len(w.providers.Pushes()) != 1 {
		t.Fatalf("%d pushes, want 1 (coalesced)", len(w.providers.Pushes()))
	}
	// The automatic ack empties the outbox. A keep-alive round trip after the last delivery makes
	// sure the broker has handled the ack.
	waitOutboxEmpty(t, w.harness, bob, b)

	// The ack that emptied the outbox may still be finishing (its counters come after the
	// delete); one more round trip on the same session orders this after it.
	if err := b.KeepAliveNow(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// What an operator scrapes after this cycle.
	_, metrics := w.adminDo("GET", "/metrics", testAdminKey, "")
	for _, want := range []string{
		fmt.Sprintf(`rewind_pushes_total{outcome="sent",platform=%q} 1`, platform),
		`rewind_outbox_appends_total{result="ok"} 4`,
		`rewind_outbox_acked_total 4`,
		`rewind_routed_total{outcome="stored"} 3`,
		`rewind_wake_to_delivery_seconds_count 1`,
		fmt.Sprintf(`rewind_push_seconds_count{platform=%q} 1`, platform),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics after a wake cycle lack %q", want)
		}
	}
}

func waitOutboxEmpty(t testing.TB, h *harness, terminal uint32, c *testclient.Client) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if err := c.KeepAliveNow(ctx(t)); err != nil {
			t.Fatal(err)
		}
		n, _, err := h.store.Depth(context.Background(), terminal)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("outbox not emptied by acknowledgements")
}

func TestWakeCycleFCM(t *testing.T)  { testWakeCycle(t, "fcm") }
func TestWakeCycleAPNs(t *testing.T) { testWakeCycle(t, "apns") }

// TestWakeAfterLostSession: a terminal that vanishes without TERMINAL_IDLE while a delivery is
// unacknowledged is woken for it.
func TestWakeAfterLostSession(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(bob, "b")
	device := w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)
	b := w.dial(bob, "b")
	if err := b.Attach(ctx(t), testclient.AttachOptions{URL: w.tokenURL("fcm"), Token: device, Platform: "fcm"}); err != nil {
		t.Fatal(err)
	}
	if res := w.publishText(t, bob, 2620009, "are you there?"); res["state"] != "active" {
		t.Fatalf("publish: %v", res)
	}
	if _, _, err := b.RecvText(ctx(t)); err != nil { // received, never acknowledged
		t.Fatal(err)
	}
	b.Abort()
	p, err := w.providers.Next(ctx(t))
	if err != nil || p.DeviceToken != device {
		t.Fatalf("no wake for the unacknowledged delivery: %v %v", p, err)
	}
	again := w.dial(bob, "b")
	if m, d, err := again.RecvText(ctx(t)); err != nil || m.Text != "are you there?" || d.Number != 1 {
		t.Fatalf("replay: %+v %v", m, err)
	}
}

// TestLargeDatagramFallsBackToWakeup: a sealed 3 000-byte datagram would not fit the provider's
// 4 096-byte payload, so the push carries a sealed TERMINAL_WAKEUP; the datagram itself comes
// over the socket after the reconnect. A terminal without keys gets a wake push with no body.
func TestLargeDatagramFallsBackToWakeup(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(bob, "b")
	w.addTerminal(bob2, "b2")
	keys, _ := testclient.GenerateKeys()
	w.phoneGoneIdle(t, bob, "b", "fcm", keys)
	noKeysDevice := w.phoneGoneIdle(t, bob2, "b2", "fcm", nil)

	big := strings.Repeat("x", 1490) // 2 980 bytes of UTF-16: a 3 014-byte datagram
	w.publishText(t, bob, 2620009, big)
	p, err := w.providers.Next(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Data["type"] != "wake" || p.Data["enc"] != "aes128gcm" {
		t.Fatalf("large datagram push: %v", p.Data)
	}
	plain, err := keys.Open(decodeBody(t, p.Data["body"]))
	if err != nil {
		t.Fatal(err)
	}
	d, err := protocol.Decode(plain)
	if err != nil || d.Type != protocol.TypeTerminalWakeup {
		t.Fatalf("sealed body: %v %v", d, err)
	}
	if pending, err := protocol.DecodeU32("wakeup", d.Data); err != nil || pending != 1 {
		t.Fatalf("pending %d %v", pending, err)
	}
	b := w.dial(bob, "b")
	if m, _, err := b.RecvText(ctx(t)); err != nil || m.Text != big {
		t.Fatalf("large text over the socket: %d runes, %v", len(m.Text), err)
	}

	w.publishText(t, bob2, 2620009, "small, but no keys")
	p, err = w.providers.Next(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.DeviceToken != noKeysDevice || p.Data["type"] != "wake" || p.Data["body"] != "" || p.Data["enc"] != "" {
		t.Fatalf("terminal without keys: %v", p.Data)
	}
}

// TestLegacyAttachWakeOnlyByDefault: a legacy attach gets no plaintext datagram unless the
// operator allows it, and the event stream says why; with --plain-legacy it gets the datagram.
func TestLegacyAttachWakeOnlyByDefault(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprint("plain=", plain), func(t *testing.T) {
			w := newPushWorld(t, func(c *PushConfig) { c.PlainLegacy = plain })
			w.addTerminal(bob, "b")
			device := w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)
			b := w.dial(bob, "b")
			if err := b.Attach(ctx(t), testclient.AttachOptions{URL: w.tokenURL("fcm"), Token: device, Legacy: true}); err != nil {
				t.Fatal(err)
			}
			b.Idle(ctx(t))
			b.Abort()
			w.publishText(t, bob, 2620009, "legacy")
			p, err := w.providers.Next(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			evs := w.srv.Events(0, bob, []string{EventPushSent}, 0)
			if len(evs) != 1 {
				t.Fatalf("push_sent events: %v", evs)
			}
			if !plain {
				if p.Data["type"] != "wake" || p.Data["body"] != "" {
					t.Fatalf("legacy push without --plain-legacy: %v", p.Data)
				}
				if note, _ := evs[0].Detail["note"].(string); !strings.Contains(note, "--plain-legacy") {
					t.Fatalf("event does not say why: %v", evs[0].Detail)
				}
				return
			}
			if p.Data["type"] != "data" || p.Data["enc"] != "none" {
				t.Fatalf("legacy push with --plain-legacy: %v", p.Data)
			}
			d, err := protocol.Decode(decodeBody(t, p.Data["body"]))
			if m, merr := protocol.DecodeTextMessage(d.Data); err != nil || merr != nil || m.Text != "legacy" {
				t.Fatalf("plain body: %v %v %v", d, err, merr)
			}
		})
	}
}

// A wake asked for while the terminal was away but carried out after it came back (an old
// session's cleanup, an idle with unacknowledged deliveries) sends nothing: the terminal's pump
// delivers. It once pushed anyway, and the quiet period that push started made the next real
// wake, after the terminal went idle again, answer already_pending and push nothing: the
// datagram waited for the terminal's next reconnect.
func TestStaleWakeDoesNotHoldBackTheNextOne(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(bob, "b")
	device := w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)
	cfg := w.config(bob, "b")
	cfg.AutoAck = false
	c, err := testclient.Dial(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Attach(ctx(t), testclient.AttachOptions{URL: w.tokenURL("fcm"), Token: device, Platform: "fcm"}); err != nil {
		t.Fatal(err)
	}
	// A stored text the active terminal has received but not yet acknowledged, and a wake for
	// it that arrives late.
	if res := w.publishText(t, bob, 2620009, "one"); res["push"] != WakeNotNeeded {
		t.Fatalf("publish to an active terminal: %v", res)
	}
	d, err := c.RecvStored(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := w.srv.waker.request(bob, true); got != WakeNotNeeded {
		t.Fatalf("late wake for an active terminal: %q, want %q", got, WakeNotNeeded)
	}
	if n := len(w.providers.Pushes()); n != 0 {
		t.Fatalf("%d pushes to an active terminal", n)
	}
	if err := c.Ack(ctx(t), d.Number); err != nil {
		t.Fatal(err)
	}
	if err := c.Idle(ctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Abort()
	w.waitClosed()
	// Within the quiet period (the fake clock does not move), the next text wakes it.
	if res := w.publishText(t, bob, 2620009, "two"); res["push"] != WakeSent {
		t.Fatalf("publish after the terminal went idle again: %v", res)
	}
	if n := len(w.providers.Pushes()); n != 1 {
		t.Fatalf("%d pushes, want 1", n)
	}
}
