package testclient

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rewind-broker/rewind/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	alice    = 262000101
	bob      = 262000201
	password = "secret pw"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a client to f, failing the test on error, and closes it at cleanup.
func dial(t *testing.T, f *fakeBroker, cfg Config) (*Client, *fakeSession) {
	t.Helper()
	cfg.URL = f.url()
	if cfg.ID == 0 {
		cfg.ID = alice
	}
	if cfg.Password == "" {
		cfg.Password = password
	}
	c, err := Dial(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, f.next()
}

func TestDialHandshake(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{})

	if c.ID() != alice {
		t.Errorf("ID() = %d", c.ID())
	}
	if s.hello.Type != protocol.TypeKeepAlive || s.hello.Number != 0 {
		t.Errorf("hello = %s, want KEEP_ALIVE number 0", s.hello)
	}
	v, err := protocol.DecodeVersionData(s.hello.Data)
	if err != nil {
		t.Fatal(err)
	}
	if want := (protocol.VersionData{Number: alice, Service: protocol.ServiceTerminal, Description: DefaultDescription}); v != want {
		t.Errorf("hello data = %+v, want %+v", v, want)
	}
	want := protocol.AuthDigest(s.challenge, password)
	if s.auth.Type != protocol.TypeAuthentication || s.auth.Number != 1 || string(s.auth.Data) != string(want[:]) {
		t.Errorf("authentication = %s %x, want number 1 and %x", s.auth, s.auth.Data, want)
	}
}

func TestDialDescription(t *testing.T) {
	f := newFakeBroker(t, password, true)
	_, s := dial(t, f, Config{Description: "phone 1.2"})
	v, _ := protocol.DecodeVersionData(s.hello.Data)
	if v.Description != "phone 1.2" {
		t.Errorf("description = %q", v.Description)
	}
}

func TestDialWrongPassword(t *testing.T) {
	f := newFakeBroker(t, password, true)
	_, err := Dial(testContext(t), Config{URL: f.url(), ID: alice, Password: "wrong"})
	if err == nil {
		t.Fatal("Dial succeeded with a wrong password")
	}
	var be *protocol.BrokerError
	if !errors.As(err, &be) || be.Code != protocol.CodeUnauthorized {
		t.Errorf("errors.As(*BrokerError) = %v, want code 401; err = %v", be, err)
	}
	var bv protocol.BrokerError
	if !errors.As(err, &bv) || bv.Code != protocol.CodeUnauthorized {
		t.Errorf("errors.As(BrokerError) = %v, want code 401", bv)
	}
	if got := CloseCode(err); got != 4401 {
		t.Errorf("CloseCode = %d, want 4401; err = %v", got, err)
	}
	var se *SessionError
	if !errors.As(err, &se) || se.Phase != "authentication" {
		t.Errorf("SessionError = %+v", se)
	}
	<-f.refused
}

func TestDialNoServer(t *testing.T) {
	f := newFakeBroker(t, password, true)
	url := f.url()
	f.srv.Close()
	_, err := Dial(testContext(t), Config{URL: url, ID: alice, Password: password})
	if err == nil || CloseCode(err) != -1 {
		t.Errorf("Dial to a closed server: err = %v, CloseCode = %d", err, CloseCode(err))
	}
}

func TestDialNeedsURL(t *testing.T) {
	if _, err := Dial(t.Context(), Config{ID: alice}); err == nil {
		t.Error("Dial without URL succeeded")
	}
}

func TestKeepAliveLoop(t *testing.T) {
	f := newFakeBroker(t, password, true)
	_, s := dial(t, f, Config{KeepAlive: time.Millisecond})
	next := uint32(2) // hello 0, authentication 1
	for range 3 {
		d := s.recv(false)
		if d.Type != protocol.TypeKeepAlive || len(d.Data) != 0 || d.Number != next {
			t.Fatalf("got %s, want an empty KEEP_ALIVE number %d", d, next)
		}
		next++
	}
}

func TestKeepAliveNowWaitsForEcho(t *testing.T) {
	f := newFakeBroker(t, password, false) // the test echoes by hand
	c, s := dial(t, f, Config{KeepAlive: -1})

	done := make(chan error, 1)
	go func() { done <- c.KeepAliveNow(testContext(t)) }()
	d := s.recv(false)
	if d.Type != protocol.TypeKeepAlive || d.Number != 2 {
		t.Fatalf("got %s, want KEEP_ALIVE number 2", d)
	}
	select {
	case err := <-done:
		t.Fatalf("KeepAliveNow returned before the echo: %v", err)
	default:
	}
	s.write(protocol.Datagram{Type: protocol.TypeKeepAlive})
	if err := <-done; err != nil {
		t.Fatalf("KeepAliveNow: %v", err)
	}

	// The echo is not something Recv returns: the next datagram is the text.
	s.write(protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "after")})
	if m, _, err := c.RecvText(testContext(t)); err != nil || m.Text != "after" {
		t.Fatalf("RecvText = %+v, %v", m, err)
	}
}

func TestKeepAliveNowTimesOutWithoutEcho(t *testing.T) {
	f := newFakeBroker(t, password, false)
	c, s := dial(t, f, Config{KeepAlive: -1})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.KeepAliveNow(ctx) }()
	if d := s.recv(false); d.Type != protocol.TypeKeepAlive {
		t.Fatalf("got %s", d)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("KeepAliveNow = %v, want context.Canceled", err)
	}
}

func TestSendNumbering(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	ctx := testContext(t)
	if err := c.SendText(ctx, bob, "one"); err != nil {
		t.Fatal(err)
	}
	raw := protocol.Datagram{Type: protocol.TypeReport, Number: 77}.MustEncode()
	if err := c.SendRaw(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if err := c.SendGroupText(ctx, 91, "two"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendStatus(ctx, bob, protocol.StatusRead); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctx, 5); err != nil {
		t.Fatal(err)
	}

	d := s.expect(protocol.TypeMessageText)
	m, _ := protocol.DecodeTextMessage(d.Data)
	if d.Number != 2 || m != (protocol.TextMessage{Source: alice, Destination: bob, Option: protocol.OptionPrivate, Text: "one"}) {
		t.Errorf("private text = %s %+v", d, m)
	}
	if d = s.expect(protocol.TypeReport); d.Number != 77 {
		t.Errorf("raw datagram number = %d, want 77 as sent", d.Number)
	}
	d = s.expect(protocol.TypeMessageText)
	m, _ = protocol.DecodeTextMessage(d.Data)
	if d.Number != 3 || m.Option != protocol.OptionGroup || m.Destination != 91 || m.Text != "two" {
		t.Errorf("group text = %s %+v", d, m)
	}
	d = s.expect(protocol.TypeMessageStatus)
	st, _ := protocol.DecodeTextStatus(d.Data)
	if d.Number != 4 || st != (protocol.TextStatus{Source: alice, Destination: bob, Status: protocol.StatusRead}) {
		t.Errorf("status = %s %+v", d, st)
	}
	d = s.expect(protocol.TypeDeliveryAck)
	if seq, _ := protocol.DecodeU32("ack", d.Data); d.Number != 5 || seq != 5 {
		t.Errorf("ack = %s seq %d", d, seq)
	}
}

func TestAutoStatus(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{AutoStatus: true, KeepAlive: -1})
	const groupSender = 262000301
	s.write(protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, groupSender, 91, protocol.OptionGroup, "to all")})
	s.write(protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "to you")})

	// The group text is not answered: the first status is about the private one.
	d := s.expect(protocol.TypeMessageStatus)
	st, err := protocol.DecodeTextStatus(d.Data)
	if err != nil || st != (protocol.TextStatus{Source: alice, Destination: bob, Status: protocol.StatusDelivered}) {
		t.Errorf("status = %+v, %v", st, err)
	}
	for _, want := range []string{"to all", "to you"} {
		if m, _, err := c.RecvText(testContext(t)); err != nil || m.Text != want {
			t.Errorf("RecvText = %+v, %v; want %q", m, err, want)
		}
	}
}

func TestAutoAckCumulative(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{AutoAck: true, KeepAlive: -1})
	for seq := uint32(10); seq <= 12; seq++ {
		s.write(protocol.Datagram{Type: protocol.TypeMessageText, Flags: protocol.FlagBuffering, Number: seq,
			Data: text(t, bob, alice, protocol.OptionPrivate, fmt.Sprint("stored ", seq))})
	}
	// Live datagrams are not acknowledged.
	s.write(protocol.Datagram{Type: protocol.TypeMessageText, Number: 99, Data: text(t, bob, 91, protocol.OptionGroup, "live")})

	last := uint32(0)
	for last < 12 {
		d := s.expect(protocol.TypeDeliveryAck)
		seq, err := protocol.DecodeU32("ack", d.Data)
		if err != nil || seq < 10 || seq > 12 || seq < last {
			t.Fatalf("ack %d (%v) after %d: want non-decreasing within 10..12", seq, err, last)
		}
		last = seq
	}
	for seq := uint32(10); seq <= 12; seq++ {
		_, d, err := c.RecvText(testContext(t))
		if err != nil || d.Number != seq || d.Flags&protocol.FlagBuffering == 0 {
			t.Fatalf("RecvText = %s, %v; want stored delivery %d", d, err, seq)
		}
	}
	// A barrier proves no ack for the live text is on its way: the fake reads in order.
	if err := c.KeepAliveNow(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if d := s.recv(false); d.Type != protocol.TypeKeepAlive {
		t.Fatalf("after the acks got %s, want the KEEP_ALIVE", d)
	}
}

func TestSubscribeQueuesEarlierDatagrams(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})

	done := make(chan error, 1)
	go func() { done <- c.Subscribe(testContext(t), 91) }()
	d := s.expect(protocol.TypeSubscription)
	sub, err := protocol.DecodeSubscription(d.Data)
	if err != nil || sub != (protocol.Subscription{Type: protocol.SubscriptionGroup, Number: 91}) {
		t.Fatalf("subscription = %+v, %v", sub, err)
	}
	// A text arrives before the echo, and an echo for another talkgroup.
	s.write(protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, 91, protocol.OptionGroup, "early")})
	other := protocol.Subscription{Type: protocol.SubscriptionGroup, Number: 92}.Encode()
	s.write(protocol.Datagram{Type: protocol.TypeSubscription, Data: other})
	s.write(protocol.Datagram{Type: protocol.TypeSubscription, Data: d.Data})
	if err := <-done; err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if m, _, err := c.RecvText(testContext(t)); err != nil || m.Text != "early" {
		t.Fatalf("RecvText = %+v, %v", m, err)
	}
	if d, err := c.Recv(testContext(t)); err != nil || d.Type != protocol.TypeSubscription || string(d.Data) != string(other) {
		t.Fatalf("Recv = %s, %v; want the unrelated echo", d, err)
	}

	go func() { done <- c.Unsubscribe(testContext(t), 91) }()
	d = s.expect(protocol.TypeCancelling)
	s.write(protocol.Datagram{Type: protocol.TypeCancelling, Data: d.Data})
	if err := <-done; err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
}

func TestSubscribeRefused(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	done := make(chan error, 1)
	go func() { done <- c.Subscribe(testContext(t), 666) }()
	s.expect(protocol.TypeSubscription)
	s.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{
		Code: protocol.CodeForbidden, Offending: protocol.TypeSubscription, Reason: "talkgroup not allowed"}.Encode()})
	err := <-done
	var be protocol.BrokerError
	if !errors.As(err, &be) || be.Code != protocol.CodeForbidden {
		t.Fatalf("Subscribe = %v, want broker error 403", err)
	}
}

func TestRecvTextUnexpected(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	s.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{
		Code: protocol.CodeNotFound, Offending: protocol.TypeMessageText, Reason: "no such terminal"}.Encode()})
	_, d, err := c.RecvText(testContext(t))
	var ue *UnexpectedError
	if !errors.As(err, &ue) || d.Type != protocol.TypeBrokerError {
		t.Fatalf("RecvText = %s, %v; want an UnexpectedError", d, err)
	}
	var be *protocol.BrokerError
	if !errors.As(err, &be) || be.Code != protocol.CodeNotFound {
		t.Fatalf("errors.As BrokerError from %v", err)
	}
}

func TestSessionEndedByBroker(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	s.write(protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "last words")})
	s.write(protocol.Datagram{Type: protocol.TypeClose})
	s.ws.Close(4409, "replaced")

	if m, _, err := c.RecvText(testContext(t)); err != nil || m.Text != "last words" {
		t.Fatalf("queued text lost: %+v, %v", m, err)
	}
	_, err := c.Recv(testContext(t))
	var se *SessionError
	if CloseCode(err) != 4409 || !errors.As(err, &se) || !se.CloseReceived || se.BrokerError != nil {
		t.Fatalf("Recv = %v, want the 4409 session end after CLOSE", err)
	}
	<-c.Done()
	if CloseCode(c.Err()) != 4409 {
		t.Errorf("Err() = %v", c.Err())
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after the broker's close: %v", err)
	}
}

func TestSessionEndedAfterBrokerErrors(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	for range 3 {
		s.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{Code: protocol.CodeMalformed, Reason: "bad"}.Encode()})
	}
	s.ws.Close(4400, "malformed")
	for range 3 {
		if d, err := c.Recv(testContext(t)); err != nil || d.Type != protocol.TypeBrokerError {
			t.Fatalf("Recv = %s, %v", d, err)
		}
	}
	_, err := c.Recv(testContext(t))
	var be *protocol.BrokerError
	if CloseCode(err) != 4400 || !errors.As(err, &be) || be.Code != protocol.CodeMalformed {
		t.Fatalf("Recv = %v, want close 4400 carrying broker error 400", err)
	}
}

func TestCloseSendsClose(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s.expect(protocol.TypeClose)
	if err := s.ended(); CloseCode(err) != 1000 {
		t.Errorf("fake broker saw %v, want close 1000", err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", c.Err())
	}
	if _, err := c.Recv(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Recv after Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	c.Abort() // no-op after Close
}

func TestAbortSendsNothing(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: -1})
	c.Abort()
	if err := s.ended(); CloseCode(err) != -1 {
		t.Errorf("fake broker saw %v, want no close frame", err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v", c.Err())
	}
}

func TestSmallQueueLosesNothing(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{RecvQueue: 1, KeepAlive: -1})
	const n = 200
	go func() {
		for i := range n {
			s.write(protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, fmt.Sprint(i))})
		}
	}()
	for i := range n {
		m, _, err := c.RecvText(testContext(t))
		if err != nil || m.Text != fmt.Sprint(i) {
			t.Fatalf("text %d: %+v, %v", i, m, err)
		}
	}
}

func TestCloseWhileReaderBlockedOnFullQueue(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{RecvQueue: 1, KeepAlive: -1})
	for range 3 { // one queued, one held by the blocked reader, one in flight
		s.write(protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "x")})
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestIdlePausesKeepAlives(t *testing.T) {
	f := newFakeBroker(t, password, true)
	c, s := dial(t, f, Config{KeepAlive: time.Millisecond})
	ctx := testContext(t)
	if err := c.Send(ctx, protocol.Datagram{Type: protocol.TypeTerminalIdle}); err != nil {
		t.Fatal(err)
	}
	for d := s.recv(false); d.Type != protocol.TypeTerminalIdle; d = s.recv(false) {
	}
	if err := c.SendRaw(ctx, protocol.Datagram{Type: protocol.TypeReport}.MustEncode()); err != nil {
		t.Fatal(err)
	}
	// Nothing but the report may follow the idle while idle, however many intervals passed.
	if d := s.recv(false); d.Type != protocol.TypeReport {
		t.Fatalf("after TERMINAL_IDLE got %s", d)
	}
	if err := c.KeepAliveNow(ctx); err != nil {
		t.Fatal(err)
	}
	s.recv(false) // KeepAliveNow's own
	if d := s.recv(false); d.Type != protocol.TypeKeepAlive {
		t.Fatalf("loop did not resume: %s", d)
	}
}
