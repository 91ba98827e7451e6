package broker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/testclient"
)

func (h *harness) putTerminal(t testing.TB, id uint32, password, name string) {
	t.Helper()
	if status, body := h.adminDo("PUT", fmt.Sprintf("/v1/terminals/%d", id), testAdminKey,
		fmt.Sprintf(`{"password":%q,"name":%q}`, password, name)); status != 201 && status != 200 {
		t.Fatalf("put %d: %d %s", id, status, body)
	}
}

func (h *harness) terminalDetail(t testing.TB, id uint32) (TerminalDetail, string) {
	t.Helper()
	status, body := h.adminDo("GET", fmt.Sprintf("/v1/terminals/%d", id), testAdminKey, "")
	var d TerminalDetail
	if status != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("detail of %d: %d %s", id, status, body)
	}
	return d, body
}

func hexPrefix(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:])[:16]
}

// mustNotLeak fails when body holds any of the secrets, in any usual encoding.
func mustNotLeak(t testing.TB, body string, secrets map[string][]byte) {
	t.Helper()
	for what, s := range secrets {
		for _, enc := range []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s),
			base64.RawURLEncoding.EncodeToString(s)} {
			if strings.Contains(body, enc) {
				t.Errorf("the answer holds the %s (%.20q…)", what, enc)
			}
		}
	}
}

func TestAdminTerminalDetail(t *testing.T) {
	w := newPushWorld(t)
	w.putTerminal(t, bob, "b-secret-pw", "Bob phone")
	keys, err := testclient.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	sigPub, _, _ := ed25519.GenerateKey(rand.Reader)
	c, device := w.attachLive(t, bob, "b-secret-pw", "fcm", testclient.AttachOptions{Keys: keys, SigKey: sigPub, Name: "Pixel 9"})

	// Live and attached, nothing stored.
	d, _ := w.terminalDetail(t, bob)
	if d.State != "active" || d.Session == nil || d.Session.Terminal != bob || d.Attach == nil || d.Outbox == nil || d.Outbox.Depth != 0 || d.Outbox.OldestStored != nil {
		t.Fatalf("live detail: %+v", d)
	}
	if err := c.Idle(ctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Abort()
	w.waitClosed()

	// Offline with two texts stored: the first pushes.
	if out := w.publishText(t, bob, 2620009, "one"); out["push"] != WakeSent {
		t.Fatalf("first publish: %v", out)
	}
	w.publishText(t, bob, 2620009, "two")

	d, body := w.terminalDetail(t, bob)
	p256 := keys.Private.PublicKey().Bytes()
	a := d.Attach
	switch {
	case d.ID != bob || d.User != 2620002 || d.Name != "Bob phone" || d.LastSeen == nil:
		t.Errorf("terminal: %+v", d.TerminalInfo)
	case d.State != "offline" || d.Session != nil:
		t.Errorf("state %q, session %+v", d.State, d.Session)
	case a == nil:
		t.Fatalf("no attach: %s", body)
	case a.Platform != "fcm" || a.Name != "Pixel 9" || a.Legacy || a.Invalid || a.Topic != "":
		t.Errorf("attach: %+v", a)
	case a.TokenServiceHost != strings.TrimPrefix(w.vendor.URL, "http://"):
		t.Errorf("token service host %q, vendor %s", a.TokenServiceHost, w.vendor.URL)
	case !strings.HasPrefix(a.DeviceToken, device[:6]+"…") || !strings.HasSuffix(a.DeviceToken, fmt.Sprintf("[%d bytes]", len(device))):
		t.Errorf("device token shown as %q", a.DeviceToken)
	case a.P256DHFingerprint != hexPrefix(p256) || a.SigKeyFingerprint != hexPrefix(sigPub) || a.SigKeyKind != "ed25519":
		t.Errorf("fingerprints: %+v", a)
	case a.Attached.IsZero() || !a.TokenUpdated.Equal(a.Attached) || a.InvalidAt != nil:
		t.Errorf("attach times: %+v", a)
	case d.Outbox == nil || d.Outbox.Depth != 2 || d.Outbox.OldestStored == nil:
		t.Errorf("outbox: %+v", d.Outbox)
	}
	if want := int64(max(w.clock.Now().Sub(*d.Outbox.OldestStored), 0) / time.Second); d.Outbox.OldestAgeSeconds != want {
		t.Errorf("oldest age %d s, want %d", d.Outbox.OldestAgeSeconds, want)
	}
	mustNotLeak(t, body, map[string][]byte{
		"device token": []byte(device), "token-service query": []byte("s3cret-code"), "token-service path": []byte("/token/fcm"),
		"password": []byte("b-secret-pw"), "p256dh key": p256, "auth secret": keys.Auth, "signature key": sigPub,
	})

	// An invalidated attach shows why, with the token redacted even if a provider echoed it.
	at := w.clock.Now().Add(-time.Minute)
	if _, err := w.store.MarkAttachInvalid(context.Background(), bob, device, "Unregistered: "+device, at); err != nil {
		t.Fatal(err)
	}
	d, body = w.terminalDetail(t, bob)
	if !d.Attach.Invalid || !strings.HasPrefix(d.Attach.InvalidReason, "Unregistered: "+device[:6]) || d.Attach.InvalidAt == nil || !d.Attach.InvalidAt.Equal(at) {
		t.Errorf("invalid attach: %+v", d.Attach)
	}
	mustNotLeak(t, body, map[string][]byte{"device token": []byte(device)})
}

func TestAdminTerminalDetailSigKeyES256AndNoAttach(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(alice, "a")
	w.addTerminal(bob, "b")
	keys, _ := testclient.GenerateKeys()
	sig := keys.Private.PublicKey().Bytes() // any P-256 point will do as an ES256 key
	w.attachLive(t, bob, "b", "apns", testclient.AttachOptions{SigKey: sig})
	d, _ := w.terminalDetail(t, bob)
	if a := d.Attach; a == nil || a.Platform != "apns" || a.Topic != apnsTopic || a.SigKeyKind != "es256" || a.SigKeyFingerprint != hexPrefix(sig) || a.P256DHFingerprint != "" {
		t.Fatalf("apns attach: %+v", a)
	}
	d, body := w.terminalDetail(t, alice)
	if d.Attach != nil || !strings.Contains(body, `"attach": null`) || d.State != "offline" || d.Outbox == nil || d.Outbox.Depth != 0 {
		t.Fatalf("never attached: %s", body)
	}
}

func TestAdminTerminalDetailWithoutPush(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	d, body := h.terminalDetail(t, alice)
	if d.Outbox != nil || d.Attach != nil || d.State != "offline" || strings.Contains(body, `"outbox"`) {
		t.Fatalf("%s", body)
	}
}

func TestOutboxInfo(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		n      int
		oldest time.Time
		age    int64
	}{
		{0, time.Time{}, 0},
		{3, now.Add(-90500 * time.Millisecond), 90},
		{1, now.Add(time.Second), 0}, // the store's clock ahead of the broker's
	} {
		got := outboxInfo(c.n, c.oldest, now)
		if got.Depth != c.n || got.OldestAgeSeconds != c.age || (got.OldestStored == nil) != (c.n == 0) {
			t.Errorf("%+v: %+v", c, got)
		}
	}
}

func TestAdminUserTerminals(t *testing.T) {
	w := newPushWorld(t)
	w.putTerminal(t, bob, "b", "Bob phone")
	w.putTerminal(t, bob2, "b2", "Bob desk")
	w.addTerminal(alice, "a")
	c, _ := w.attachLive(t, bob, "b", "fcm", testclient.AttachOptions{Name: "Pixel"})
	c.Idle(ctx(t))
	w.dial(bob2, "b2")

	status, body := w.adminDo("GET", "/v1/users/2620002/terminals", testAdminKey, "")
	var out UserDevices
	if status != 200 || json.Unmarshal([]byte(body), &out) != nil || out.User != 2620002 || len(out.Terminals) != 2 {
		t.Fatalf("%d %s", status, body)
	}
	phone, desk := out.Terminals[0], out.Terminals[1]
	if phone.ID != bob || phone.Name != "Bob phone" || phone.State != "idle" || phone.Platform != "fcm" || phone.AttachName != "Pixel" || phone.LastSeen == nil || phone.Since == nil {
		t.Errorf("phone: %+v", phone)
	}
	if desk.ID != bob2 || desk.Name != "Bob desk" || desk.State != "active" || desk.Platform != "none" || desk.Since == nil {
		t.Errorf("desk: %+v", desk)
	}
	c.Abort()
	w.waitClosed()
	status, body = w.adminDo("GET", "/v1/users/2620002/terminals", testAdminKey, "")
	out = UserDevices{}
	if json.Unmarshal([]byte(body), &out) != nil || out.Terminals[0].State != "offline" || out.Terminals[0].Since != nil || out.Terminals[0].Platform != "fcm" {
		t.Errorf("phone gone: %d %s", status, body)
	}
}

func TestAdminTerminalNotFound(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(alice, "a")
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/v1/terminals/262000999", "", 404},
		{"GET", "/v1/terminals/x", "", 400},
		{"GET", "/v1/terminals/0", "", 400},
		{"GET", "/v1/users/2629999/terminals", "", 404},
		{"GET", "/v1/users/262000101/terminals", "", 404}, // a terminal id is not a user with devices
		{"GET", "/v1/users/abc/terminals", "", 400},
		{"GET", "/v1/users/0/terminals", "", 400},
		{"GET", "/v1/users/4294967296/terminals", "", 400},
	} {
		if status, body := w.adminDo(c.method, c.path, testAdminKey, c.body); status != c.status || !strings.Contains(body, `"error"`) {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, status, body, c.status)
		}
	}
}
