package testclient

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/rewind-broker/rewind/protocol"
)

const tokenURL = "https://tokens.example.com/v1/rewind"

func generateKeys(t *testing.T) *PushKeyPair {
	t.Helper()
	k, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestEncodeAttachLegacy(t *testing.T) {
	for _, platform := range []string{"", PlatformFCM} {
		b, err := EncodeAttach(AttachOptions{URL: tokenURL, Token: "dev:tok", Platform: platform, Legacy: true})
		if want := tokenURL + " dev:tok"; err != nil || string(b) != want {
			t.Errorf("platform %q: EncodeAttach = %q, %v; want %q", platform, b, err, want)
		}
	}
	keys := generateKeys(t)
	for name, opt := range map[string]AttachOptions{
		"apns":      {URL: tokenURL, Token: "t", Platform: PlatformAPNs},
		"keys":      {URL: tokenURL, Token: "t", Keys: keys},
		"raw keys":  {URL: tokenURL, Token: "t", RawKeys: &protocol.PushKeys{}},
		"sigkey":    {URL: tokenURL, Token: "t", SigKey: []byte{1}},
		"name":      {URL: tokenURL, Token: "t", Name: "Pixel"},
		"topic":     {URL: tokenURL, Token: "t", Topic: "com.example.app"},
		"url space": {URL: "https://a b", Token: "t"},
	} {
		opt.Legacy = true
		if b, err := EncodeAttach(opt); err == nil {
			t.Errorf("%s: legacy attach encoded as %q, want an error", name, b)
		}
	}
}

// decodeAttach decodes an extended attach generically, so that the test sees msgpack's types:
// []byte only for bin, string only for str.
func decodeAttach(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if len(b) == 0 || b[0] < 0x80 || b[0] > 0x8f {
		t.Fatalf("attach starts with %#x, want a fixmap", b)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		t.Fatalf("attach does not decode: %v", err)
	}
	return m
}

func TestEncodeAttachExtended(t *testing.T) {
	keys := generateKeys(t)
	sig := bytes.Repeat([]byte{7}, 32)
	b, err := EncodeAttach(AttachOptions{URL: tokenURL, Token: "apns-device", Platform: PlatformAPNs,
		Topic: "com.example.rewind", Keys: keys, SigKey: sig, Name: "Anna's iPhone"})
	if err != nil {
		t.Fatal(err)
	}
	m := decodeAttach(t, b)
	keysOf := slices.Sorted(maps.Keys(m))
	if want := []string{"auth", "name", "p256dh", "platform", "sigkey", "token", "topic", "url", "v"}; !slices.Equal(keysOf, want) {
		t.Errorf("keys %v, want %v", keysOf, want)
	}
	if v, ok := m["v"].(int8); !ok || v != 1 {
		t.Errorf("v = %#v (%T), want the integer 1", m["v"], m["v"])
	}
	for k, want := range map[string]string{"url": tokenURL, "token": "apns-device", "platform": "apns",
		"topic": "com.example.rewind", "name": "Anna's iPhone"} {
		if got, ok := m[k].(string); !ok || got != want {
			t.Errorf("%s = %#v (%T), want the string %q", k, m[k], m[k], want)
		}
	}
	pub := keys.Public()
	for k, want := range map[string][]byte{"p256dh": pub.P256DH, "auth": pub.Auth, "sigkey": sig} {
		if got, ok := m[k].([]byte); !ok || !bytes.Equal(got, want) {
			t.Errorf("%s = %#v (%T), want bin %x", k, m[k], m[k], want)
		}
	}
	if len(pub.P256DH) != 65 || pub.P256DH[0] != 4 || len(pub.Auth) != 16 {
		t.Errorf("public keys of %d and %d bytes", len(pub.P256DH), len(pub.Auth))
	}
}

func TestEncodeAttachExtendedMinimal(t *testing.T) {
	b, err := EncodeAttach(AttachOptions{URL: tokenURL, Token: "fcm-device"})
	if err != nil {
		t.Fatal(err)
	}
	m := decodeAttach(t, b)
	if len(m) != 4 || m["platform"] != "fcm" || m["url"] != tokenURL || m["token"] != "fcm-device" {
		t.Errorf("minimal attach = %v, want v, url, token and platform fcm only", m)
	}

	// RawKeys go out as given, unchecked, and win over Keys.
	raw := &protocol.PushKeys{P256DH: []byte{4, 1, 2}, Auth: []byte{9}}
	b, err = EncodeAttach(AttachOptions{URL: tokenURL, Token: "t", Keys: generateKeys(t), RawKeys: raw})
	if err != nil {
		t.Fatal(err)
	}
	m = decodeAttach(t, b)
	if !bytes.Equal(m["p256dh"].([]byte), raw.P256DH) || !bytes.Equal(m["auth"].([]byte), raw.Auth) {
		t.Errorf("raw keys sent as %x %x", m["p256dh"], m["auth"])
	}
}

func TestAttach(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	opt := AttachOptions{URL: tokenURL, Token: "fcm-device", Keys: generateKeys(t), Name: "Pixel"}
	done := make(chan error, 1)
	go func() { done <- c.Attach(testContext(t), opt) }()

	d := s.expect(protocol.TypeTerminalAttach)
	if want, _ := EncodeAttach(opt); !bytes.Equal(d.Data, want) {
		t.Errorf("attach data %x, want %x", d.Data, want)
	}
	// A text and an error about something else arrive first: they stay queued.
	s.write(protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "early")})
	s.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{Code: 404, Offending: protocol.TypeMessageText}.Encode()})
	s.write(protocol.Datagram{Type: protocol.TypeTerminalAttach})
	if err := <-done; err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if m, _, err := c.RecvText(testContext(t)); err != nil || m.Text != "early" {
		t.Fatalf("RecvText = %+v, %v", m, err)
	}
	if d, err := c.Recv(testContext(t)); err != nil || d.Type != protocol.TypeBrokerError {
		t.Fatalf("Recv = %s, %v; want the unrelated error", d, err)
	}
}

func TestAttachRefused(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	done := make(chan error, 1)
	go func() {
		done <- c.Attach(testContext(t), AttachOptions{URL: "https://evil.example", Token: "t", Legacy: true})
	}()
	if d := s.expect(protocol.TypeTerminalAttach); string(d.Data) != "https://evil.example t" {
		t.Errorf("legacy attach %q", d.Data)
	}
	s.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{
		Code: protocol.CodeForbidden, Offending: protocol.TypeTerminalAttach, Reason: "URL not allowed"}.Encode()})
	err := <-done
	var be *protocol.BrokerError
	var ue *UnexpectedError
	if !errors.As(err, &be) || be.Code != protocol.CodeForbidden || !errors.As(err, &ue) {
		t.Fatalf("Attach = %v, want an UnexpectedError carrying broker error 403", err)
	}
	if !strings.Contains(err.Error(), "URL not allowed") {
		t.Errorf("error %q does not name the reason", err)
	}
	if d, ok := c.TryRecv(); ok {
		t.Errorf("the refusal was also queued: %s", d)
	}
}

func TestAttachAnswerWithData(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	done := make(chan error, 1)
	go func() { done <- c.Detach(testContext(t)) }()
	s.expect(protocol.TypeTerminalDetach)
	s.write(protocol.Datagram{Type: protocol.TypeTerminalDetach, Data: []byte{1}})
	if err := <-done; !errors.Is(err, ErrBrokerProtocol) {
		t.Fatalf("Detach = %v, want ErrBrokerProtocol", err)
	}
}

func TestIdleDetachWakeup(t *testing.T) {
	f := newPushFakeBroker(t)
	c, s := dial(t, f, Config{KeepAlive: -1})
	ctx := testContext(t)
	if err := c.Attach(ctx, AttachOptions{URL: tokenURL, Token: "t"}); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if err := c.Idle(ctx); err != nil {
		t.Fatalf("Idle: %v", err)
	}
	if err := c.Wakeup(ctx); err != nil {
		t.Fatalf("Wakeup: %v", err)
	}
	if err := c.Detach(ctx); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	for i, want := range []protocol.Type{protocol.TypeTerminalAttach, protocol.TypeTerminalIdle,
		protocol.TypeTerminalWakeup, protocol.TypeTerminalDetach} {
		d := s.recv(false)
		if d.Type != want || (len(d.Data) != 0 && want != protocol.TypeTerminalAttach) || d.Number != uint32(2+i) {
			t.Fatalf("got %s, want %s number %d", d, want, 2+i)
		}
	}
	if d, ok := c.TryRecv(); ok {
		t.Errorf("a reply was queued: %s", d)
	}
}

func TestIdleRefused(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	done := make(chan error, 1)
	go func() { done <- c.Idle(testContext(t)) }()
	s.expect(protocol.TypeTerminalIdle)
	s.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{
		Code: protocol.CodeForbidden, Offending: protocol.TypeTerminalIdle, Reason: "no push channel"}.Encode()})
	var be protocol.BrokerError
	if err := <-done; !errors.As(err, &be) || be.Code != protocol.CodeForbidden {
		t.Fatalf("Idle = %v, want broker error 403", err)
	}
}

func TestIdleEndsWithSession(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	done := make(chan error, 1)
	go func() { done <- c.Idle(testContext(t)) }()
	s.expect(protocol.TypeTerminalIdle)
	s.ws.Close(4408, "keep-alive timeout")
	if err := <-done; CloseCode(err) != 4408 {
		t.Fatalf("Idle = %v, want the session end 4408", err)
	}
}

func TestDialWakeupComesFirst(t *testing.T) {
	f := newPushFakeBroker(t)
	want := []protocol.Datagram{
		f.store(alice, protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "one")}),
		f.store(alice, protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "two")}),
	}
	c, s := dial(t, f, Config{KeepAlive: -1, AutoAck: true, Wakeup: true})
	if d := s.recv(false); d.Type != protocol.TypeTerminalWakeup || len(d.Data) != 0 || d.Number != 2 {
		t.Fatalf("first datagram %s, want an empty TERMINAL_WAKEUP number 2", d)
	}
	for _, w := range want {
		d, err := c.RecvStored(testContext(t))
		if err != nil || d.Number != w.Number || !bytes.Equal(d.Data, w.Data) {
			t.Fatalf("RecvStored = %s, %v; want %s", d, err, w)
		}
	}
	for last := uint32(0); last < 2; {
		d := s.expect(protocol.TypeDeliveryAck)
		last, _ = protocol.DecodeU32("ack", d.Data)
	}
	if left := f.outbox(alice); len(left) != 0 {
		t.Errorf("outbox after the acks: %v", left)
	}
}

func TestRecvStoredUnexpected(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	s.write(protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, 91, protocol.OptionGroup, "live")})
	d, err := c.RecvStored(testContext(t))
	var ue *UnexpectedError
	if !errors.As(err, &ue) || !ue.WantStored || d.Type != protocol.TypeMessageText {
		t.Fatalf("RecvStored = %s, %v; want an UnexpectedError", d, err)
	}
	if !strings.Contains(err.Error(), "want a stored delivery") {
		t.Errorf("error %q", err)
	}
}

func TestPushKeyPairOpen(t *testing.T) {
	k := generateKeys(t)
	plain := protocol.Datagram{Type: protocol.TypeMessageText, Flags: protocol.FlagBuffering, Number: 3,
		Data: text(t, bob, alice, protocol.OptionPrivate, "sealed")}.MustEncode()
	body, err := protocol.Seal(k.Public(), plain)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Open(body)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %x, %v; want %x", got, err, plain)
	}
	if _, err := generateKeys(t).Open(body); !errors.Is(err, protocol.ErrPushDecrypt) {
		t.Errorf("Open with another phone's keys = %v, want ErrPushDecrypt", err)
	}
	if k2 := generateKeys(t); bytes.Equal(k2.Auth, k.Auth) || k2.Private.Equal(k.Private) {
		t.Error("two key pairs share a secret")
	}
}
