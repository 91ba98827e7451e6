package broker

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient"
)

const (
	alice = 262000101 // user 2620001
	bob   = 262000201 // user 2620002
	bob2  = 262000202 // user 2620002, second device
)

func TestLoginSuccess(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "alice-secret")
	c := h.dial(alice, "alice-secret")
	if err := c.KeepAliveNow(ctx(t)); err != nil {
		t.Fatalf("keep-alive after login: %v", err)
	}
	sessions := h.srv.Sessions()
	if len(sessions) != 1 || sessions[0].Terminal != alice || sessions[0].User != 2620001 || sessions[0].State != "active" {
		t.Fatalf("sessions: %+v", sessions)
	}
}

func dialErr(t *testing.T, h *harness, id uint32, password string) error {
	t.Helper()
	c, err := testclient.Dial(ctx(t), h.config(id, password))
	if err == nil {
		c.Close()
		t.Fatalf("terminal %d logged in with password %q", id, password)
	}
	return err
}

func wantRefusal(t *testing.T, err error, code uint16, closeCode int) {
	t.Helper()
	var be *protocol.BrokerError
	if !errors.As(err, &be) || be.Code != code {
		t.Fatalf("want BROKER_ERROR %d, got %v", code, err)
	}
	if got := testclient.CloseCode(err); got != closeCode {
		t.Fatalf("want close %d, got %d (%v)", closeCode, got, err)
	}
}

func TestWrongPassword(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "alice-secret")
	wantRefusal(t, dialErr(t, h, alice, "wrong"), protocol.CodeUnauthorized, 4401)
	// An unknown terminal looks exactly the same from outside.
	wantRefusal(t, dialErr(t, h, 262000999, "whatever"), protocol.CodeUnauthorized, 4401)
	if len(h.srv.Sessions()) != 0 {
		t.Fatal("a refused terminal has a session")
	}
}

func TestBruteForceLockout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AuthFailures = 3; c.AuthWindow = time.Minute })
	h.addTerminal(alice, "alice-secret")
	wantRefusal(t, dialErr(t, h, alice, "guess1"), protocol.CodeUnauthorized, 4401)
	wantRefusal(t, dialErr(t, h, alice, "guess2"), protocol.CodeUnauthorized, 4401)
	// The third failure reaches the limit.
	wantRefusal(t, dialErr(t, h, alice, "guess3"), protocol.CodeRateLimited, 4429)
	// Locked out: even the right password is refused until the window passes.
	wantRefusal(t, dialErr(t, h, alice, "alice-secret"), protocol.CodeRateLimited, 4429)
	h.clock.Advance(time.Minute)
	h.dial(alice, "alice-secret")
}

func TestKeepAliveExpiry(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "alice-secret")
	c := h.dial(alice, "alice-secret", func(c *testclient.Config) { c.KeepAlive = -1 })

	h.clock.Advance(14 * time.Second)
	if err := c.KeepAliveNow(ctx(t)); err != nil { // resets the 15 s expiry
		t.Fatal(err)
	}
	h.clock.Advance(14 * time.Second)
	if err := c.KeepAliveNow(ctx(t)); err != nil {
		t.Fatalf("session expired although keep-alives came within 15 s: %v", err)
	}
	h.clock.Advance(15 * time.Second)
	_, err := c.Recv(ctx(t))
	if got := testclient.CloseCode(err); got != 4408 {
		t.Fatalf("want close 4408 after 15 s without keep-alive, got %d (%v)", got, err)
	}
	if s := h.waitClosed(); s.reason().Reason != CloseKeepAlive.Reason {
		t.Fatalf("close reason %q", s.reason().Reason)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	h := newHarness(t)
	conn, _, err := websocket.Dial(ctx(t), h.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	// Say nothing. The broker waits for the hello only so long.
	h.clock.waitTimer(t)
	h.clock.Advance(DefaultHandshakeTimeout)
	_, msg, err := conn.Read(ctx(t))
	if d, derr := protocol.Decode(msg); err != nil || derr != nil || d.Type != protocol.TypeClose {
		t.Fatalf("want CLOSE, got %x %v", msg, err)
	}
	_, _, err = conn.Read(ctx(t))
	if websocket.CloseStatus(err) != 4408 {
		t.Fatalf("want close 4408, got %v", err)
	}
}

func TestReplacement(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "alice-secret")
	first := h.dial(alice, "alice-secret")
	second := h.dial(alice, "alice-secret")
	_, err := first.Recv(ctx(t))
	if got := testclient.CloseCode(err); got != 4409 {
		t.Fatalf("old session: want close 4409, got %d (%v)", got, err)
	}
	if err := second.KeepAliveNow(ctx(t)); err != nil {
		t.Fatalf("new session: %v", err)
	}
	h.waitClosed()
	if s := h.srv.Sessions(); len(s) != 1 {
		t.Fatalf("want one session after replacement, have %d", len(s))
	}
}

func TestClientClose(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "alice-secret")
	c := h.dial(alice, "alice-secret")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if s := h.waitClosed(); s.reason().Reason != CloseNormal.Reason {
		t.Fatalf("close reason %q", s.reason().Reason)
	}
}

func TestMalformedDatagrams(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "alice-secret")
	h.addTerminal(bob, "bob-secret")
	bad := h.dial(alice, "alice-secret")
	good := h.dial(bob, "bob-secret")

	wantError := func(code uint16) {
		t.Helper()
		d, err := bad.Recv(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		e, derr := protocol.DecodeBrokerError(d.Data)
		if d.Type != protocol.TypeBrokerError || derr != nil || e.Code != code {
			t.Fatalf("want BROKER_ERROR %d, got %v %+v", code, d, e)
		}
	}
	// Two malformed, then a good datagram resets the count.
	bad.SendRaw(ctx(t), []byte("REWIND02 not a datagram"))
	wantError(400)
	bad.SendRaw(ctx(t), []byte("short"))
	wantError(400)
	if err := bad.KeepAliveNow(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// A text whose UTF-16 has an unpaired surrogate is malformed too.
	text, _ := protocol.TextMessage{Source: alice, Destination: bob, Text: "x"}.Encode()
	text[16], text[17] = 0x3d, 0xd8
	bad.Send(ctx(t), protocol.Datagram{Type: protocol.TypeMessageText, Data: text})
	wantError(400)
	bad.SendRaw(ctx(t), protocol.Datagram{Type: protocol.TypeKeepAlive, Data: []byte{1}}.MustEncode()[:10])
	wantError(400)
	// The third in a row closes the session.
	bad.SendRaw(ctx(t), []byte{})
	wantError(400)
	_, err := bad.Recv(ctx(t))
	if got := testclient.CloseCode(err); got != 4400 {
		t.Fatalf("want close 4400, got %d (%v)", got, err)
	}
	// Bob did not notice.
	if err := good.KeepAliveNow(ctx(t)); err != nil {
		t.Fatalf("other session affected: %v", err)
	}
}

func TestUnknownTypeIgnored(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "alice-secret")
	c := h.dial(alice, "alice-secret")
	for i := 0; i < 5; i++ {
		c.Send(ctx(t), protocol.Datagram{Type: 0x7777, Data: []byte("future")})
	}
	if err := c.KeepAliveNow(ctx(t)); err != nil {
		t.Fatalf("unknown types must not end the session: %v", err)
	}
}

func TestOversizeDatagram(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxDatagram = 1024 })
	h.addTerminal(alice, "alice-secret")
	// At the limit: accepted (an unknown type of exactly 1024 bytes is ignored).
	c := h.dial(alice, "alice-secret")
	at := protocol.Datagram{Type: 0x7777, Data: make([]byte, 1024-protocol.HeaderSize)}.MustEncode()
	if err := c.SendRaw(ctx(t), at); err != nil {
		t.Fatal(err)
	}
	if err := c.KeepAliveNow(ctx(t)); err != nil {
		t.Fatalf("datagram at the limit ended the session: %v", err)
	}
	// One byte past it: BROKER_ERROR 413, close 4413.
	past := protocol.Datagram{Type: 0x7777, Data: make([]byte, 1024-protocol.HeaderSize+1)}.MustEncode()
	c.SendRaw(ctx(t), past)
	d, err := c.Recv(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := protocol.DecodeBrokerError(d.Data); d.Type != protocol.TypeBrokerError || e.Code != protocol.CodeTooLarge {
		t.Fatalf("want BROKER_ERROR 413, got %v", d)
	}
	_, err = c.Recv(ctx(t))
	if got := testclient.CloseCode(err); got != 4413 {
		t.Fatalf("want close 4413, got %d (%v)", got, err)
	}
}

func TestShutdownRedirects(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "alice-secret")
	h.addTerminal(bob, "bob-secret")
	a := h.dial(alice, "alice-secret")
	b := h.dial(bob, "bob-secret")
	done := make(chan error, 1)
	go func() { done <- h.srv.Shutdown(ctx(t)) }()
	for _, c := range []*testclient.Client{a, b} {
		d, err := c.Recv(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		r, err := protocol.DecodeRedirection(d.Data)
		if d.Type != protocol.TypeRedirection || err != nil || r.Family != protocol.AFUnspec || r.Port != 0 || r.Address != [16]byte{} {
			t.Fatalf("want REDIRECTION AF_UNSPEC, got %v %+v", d, r)
		}
		_, err = c.Recv(ctx(t))
		if got := testclient.CloseCode(err); got != int(websocket.StatusServiceRestart) {
			t.Fatalf("want close 1012, got %d (%v)", got, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// New connections are refused while draining.
	if _, err := testclient.Dial(ctx(t), h.config(alice, "alice-secret")); err == nil {
		t.Fatal("dial succeeded after shutdown")
	}
}

func TestPasswordsNeverLogged(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AuthFailures = 2 })
	const secret = "hunter2-very-secret"
	h.addTerminal(alice, secret)
	c := h.dial(alice, secret)
	c.Close()
	h.waitClosed()
	dialErr(t, h, alice, "wrong-guess-password")
	dialErr(t, h, alice, "second-guess-password")
	status, _ := h.adminDo("PUT", "/v1/terminals/262000102", testAdminKey, `{"password":"`+secret+`-admin","name":"x"}`)
	if status != 201 {
		t.Fatalf("put: %d", status)
	}
	logs := h.logs.String()
	for _, s := range []string{secret, "wrong-guess-password", "second-guess-password", testAdminKey} {
		if strings.Contains(logs, s) {
			t.Fatalf("logs contain a secret %q", s)
		}
	}
	// The logs do name terminals and sessions.
	if !strings.Contains(logs, `"terminal":262000101`) || !strings.Contains(logs, `"session":"`) {
		t.Fatalf("logs lack terminal/session ids:\n%s", logs)
	}
}

var _ = bytes.Equal

func TestMalformedHello(t *testing.T) {
	h := newHarness(t)
	for name, msg := range map[string][]byte{
		"garbage":          []byte("hello?"),
		"wrong first type": protocol.Datagram{Type: protocol.TypeMessageText}.MustEncode(),
		"hello without id": protocol.Datagram{Type: protocol.TypeKeepAlive, Data: []byte{0, 0, 0, 0, 0x21}}.MustEncode(),
		"hello too short":  protocol.Datagram{Type: protocol.TypeKeepAlive, Data: []byte{1, 2}}.MustEncode(),
	} {
		conn, _, err := websocket.Dial(ctx(t), h.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(ctx(t), websocket.MessageBinary, msg)
		_, got, err := conn.Read(ctx(t))
		d, derr := protocol.Decode(got)
		e, _ := protocol.DecodeBrokerError(d.Data)
		if err != nil || derr != nil || d.Type != protocol.TypeBrokerError || e.Code != protocol.CodeMalformed {
			t.Fatalf("%s: want BROKER_ERROR 400, got %v %v", name, d, err)
		}
		if _, _, err := conn.Read(ctx(t)); websocket.CloseStatus(err) != 4400 {
			t.Fatalf("%s: want close 4400, got %v", name, err)
		}
		conn.CloseNow()
	}
}
