package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient"
)

func recvBrokerError(t *testing.T, c *testclient.Client) protocol.BrokerError {
	t.Helper()
	d, err := c.Recv(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	e, derr := protocol.DecodeBrokerError(d.Data)
	if d.Type != protocol.TypeBrokerError || derr != nil {
		t.Fatalf("want BROKER_ERROR, got %v", d)
	}
	return e
}

func TestPrivateTextAndStatus(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	h.addTerminal(bob, "b")
	a := h.dial(alice, "a")
	b := h.dial(bob, "b", func(c *testclient.Config) { c.AutoStatus = true })

	if err := a.SendText(ctx(t), bob, "hello bob, 73 📻"); err != nil {
		t.Fatal(err)
	}
	m, d, err := b.RecvText(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != alice || m.Destination != bob || m.Option != protocol.OptionPrivate || m.Text != "hello bob, 73 📻" {
		t.Fatalf("bob got %+v", m)
	}
	if d.Flags&protocol.FlagBuffering != 0 {
		t.Fatal("a live delivery must not carry Buffering")
	}
	// Bob's client answered with MESSAGE_STATUS; the broker routes it back to Alice.
	d, err = a.Recv(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := protocol.DecodeTextStatus(d.Data)
	if d.Type != protocol.TypeMessageStatus || err != nil || st.Source != bob || st.Destination != alice || st.Status != protocol.StatusDelivered {
		t.Fatalf("alice got %v %+v", d, st)
	}
}

func TestBrokerSequenceNumbers(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	h.addTerminal(bob, "b")
	a := h.dial(alice, "a")
	b := h.dial(bob, "b")
	var last uint32
	for i := 0; i < 3; i++ {
		a.SendText(ctx(t), bob, fmt.Sprint(i))
		_, d, err := b.RecvText(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		// Bob's session has already carried CHALLENGE and the auth KEEP_ALIVE (0 and 1).
		if i > 0 && d.Number != last+1 {
			t.Fatalf("broker sequence %d after %d", d.Number, last)
		}
		last = d.Number
	}
}

func TestTextToUserReachesAllItsTerminals(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	h.addTerminal(bob, "b")
	h.addTerminal(bob2, "b2")
	a := h.dial(alice, "a")
	b := h.dial(bob, "b")
	b2 := h.dial(bob2, "b2")

	const user = 2620002
	if err := a.SendText(ctx(t), user, "to all of bob's devices"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*testclient.Client{b, b2} {
		m, _, err := c.RecvText(ctx(t))
		if err != nil || m.Destination != user || m.Text != "to all of bob's devices" {
			t.Fatalf("terminal %d: %+v %v", c.ID(), m, err)
		}
	}
	// Alice's own device did not get it.
	if err := a.KeepAliveNow(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownDestination(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	h.addTerminal(bob, "b")
	a := h.dial(alice, "a")
	a.SendText(ctx(t), 262009999, "anyone?")
	if e := recvBrokerError(t, a); e.Code != protocol.CodeNotFound || e.Offending != protocol.TypeMessageText {
		t.Fatalf("unknown destination: %+v", e)
	}
	// Registered but not connected: 404 too until store-and-forward is enabled, with a reason
	// that says so.
	a.SendText(ctx(t), bob, "are you there?")
	if e := recvBrokerError(t, a); e.Code != protocol.CodeNotFound || !strings.Contains(e.Reason, "not connected") {
		t.Fatalf("offline destination: %+v", e)
	}
	// Spoofed source: refused.
	data, _ := protocol.TextMessage{Source: bob, Destination: alice, Text: "I am bob"}.Encode()
	a.Send(ctx(t), protocol.Datagram{Type: protocol.TypeMessageText, Data: data})
	if e := recvBrokerError(t, a); e.Code != protocol.CodeForbidden {
		t.Fatalf("spoofed source: %+v", e)
	}
}

func TestGroupFanOutToSubscribersOnly(t *testing.T) {
	h := newHarness(t)
	ids := []uint32{262000101, 262000201, 262000301, 262000401}
	var cs []*testclient.Client
	for _, id := range ids {
		h.addTerminal(id, "pw")
		cs = append(cs, h.dial(id, "pw"))
	}
	const tg = 91
	for _, c := range cs[:3] {
		if err := c.Subscribe(ctx(t), tg); err != nil {
			t.Fatal(err)
		}
	}
	if err := cs[0].SendGroupText(ctx(t), tg, "CQ CQ on 91"); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[1:3] {
		m, _, err := c.RecvText(ctx(t))
		if err != nil || m.Option != protocol.OptionGroup || m.Destination != tg || m.Source != ids[0] || m.Text != "CQ CQ on 91" {
			t.Fatalf("subscriber %d: %+v %v", c.ID(), m, err)
		}
	}
	// The sender does not get its own message back; the non-subscriber gets nothing. A marker
	// text proves nothing arrived before it.
	for _, c := range []*testclient.Client{cs[0], cs[3]} {
		cs[1].SendText(ctx(t), c.ID(), "marker")
		m, _, err := c.RecvText(ctx(t))
		if err != nil || m.Text != "marker" {
			t.Fatalf("terminal %d got %+v %v before the marker", c.ID(), m, err)
		}
	}
	// After cancelling, a subscriber no longer receives the group.
	if err := cs[2].Unsubscribe(ctx(t), tg); err != nil {
		t.Fatal(err)
	}
	cs[0].SendGroupText(ctx(t), tg, "second")
	if m, _, err := cs[1].RecvText(ctx(t)); err != nil || m.Text != "second" {
		t.Fatalf("%+v %v", m, err)
	}
	cs[1].SendText(ctx(t), cs[2].ID(), "marker")
	if m, _, err := cs[2].RecvText(ctx(t)); err != nil || m.Text != "marker" {
		t.Fatalf("unsubscribed terminal got %+v %v", m, err)
	}
}

func TestSubscriptionLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSubscriptions = 2 })
	h.addTerminal(alice, "a")
	a := h.dial(alice, "a")
	for tg := uint32(1); tg <= 2; tg++ {
		if err := a.Subscribe(ctx(t), tg); err != nil {
			t.Fatalf("subscription %d of 2: %v", tg, err)
		}
	}
	err := a.Subscribe(ctx(t), 3)
	var be *protocol.BrokerError
	if !errors.As(err, &be) || be.Code != protocol.CodeRateLimited {
		t.Fatalf("third subscription: want BROKER_ERROR 429, got %v", err)
	}
}

func TestLocationRequestAndReport(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	h.addTerminal(bob, "b")
	a := h.dial(alice, "a")
	b := h.dial(bob, "b")
	a.Send(ctx(t), protocol.Datagram{Type: protocol.TypeLocationRequest, Data: protocol.LocationRequest{Type: 1, Interval: 0, Source: alice, Destination: bob}.Encode()})
	d, err := b.Recv(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := protocol.DecodeLocationRequest(d.Data)
	if d.Type != protocol.TypeLocationRequest || err != nil || r.Source != alice {
		t.Fatalf("bob got %v %+v %v", d, r, err)
	}
	report, _ := protocol.LocationReport{Format: protocol.LocationNMEA, Data: []byte("$GPGGA,1"), Source: bob, Destination: alice}.Encode()
	b.Send(ctx(t), protocol.Datagram{Type: protocol.TypeLocationReport, Data: report})
	d, err = a.Recv(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := protocol.DecodeLocationReport(d.Data)
	if d.Type != protocol.TypeLocationReport || err != nil || string(rep.Data) != "$GPGGA,1" || rep.Source != bob {
		t.Fatalf("alice got %v %+v %v", d, rep, err)
	}
}

// TestSlowReaderDelaysNobody: a terminal that stops reading its socket fills its send queue and
// is closed as a slow consumer, while the sender and another subscriber carry on.
func TestSlowReaderDelaysNobody(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SendQueue = 64 })
	const tg = 7
	h.addTerminal(alice, "a")
	h.addTerminal(bob, "b")
	h.addTerminal(bob2, "stalled")
	a := h.dial(alice, "a")
	b := h.dial(bob, "b")
	b.Subscribe(ctx(t), tg)

	// The stalled terminal: a raw connection that authenticates, subscribes, then never reads.
	stalled := rawLogin(t, h, bob2, "stalled")
	defer stalled.CloseNow()
	sub := protocol.Datagram{Type: protocol.TypeSubscription, Data: protocol.Subscription{Type: protocol.SubscriptionGroup, Number: tg}.Encode()}.MustEncode()
	if err := stalled.Write(ctx(t), websocket.MessageBinary, sub); err != nil {
		t.Fatal(err)
	}
	// Wait until the broker has the stalled subscriber (its echo is the barrier).
	if _, _, err := stalled.Read(ctx(t)); err != nil {
		t.Fatal(err)
	}

	text := strings.Repeat("x", 3000) // 6 KB of UTF-16 per datagram
	const total = 2000                // 12 MB: more than loopback socket buffers hold
	got := 0
	for sent := 0; sent < total; {
		for i := 0; i < 50; i++ {
			if err := a.SendGroupText(ctx(t), tg, text); err != nil {
				t.Fatalf("sender blocked or failed after %d texts: %v", sent, err)
			}
			sent++
		}
		for ; got < sent; got++ {
			if _, _, err := b.RecvText(ctx(t)); err != nil {
				t.Fatalf("reader got %d of %d: %v", got, sent, err)
			}
		}
	}
	// The stalled session was closed for it.
	s := h.waitClosed()
	if s.terminal != bob2 || s.reason().Reason != CloseSlowConsumer.Reason {
		t.Fatalf("closed session %d for %q", s.terminal, s.reason().Reason)
	}
}

// rawLogin authenticates a terminal over a bare WebSocket, for tests that misbehave.
func rawLogin(t *testing.T, h *harness, id uint32, password string) *websocket.Conn {
	t.Helper()
	c := ctx(t)
	conn, _, err := websocket.Dial(c, h.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	hello, _ := protocol.VersionData{Number: id, Service: protocol.ServiceTerminal}.Encode()
	write := func(d protocol.Datagram) {
		if err := conn.Write(c, websocket.MessageBinary, d.MustEncode()); err != nil {
			t.Fatal(err)
		}
	}
	read := func() protocol.Datagram {
		_, msg, err := conn.Read(c)
		if err != nil {
			t.Fatal(err)
		}
		d, err := protocol.Decode(msg)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	write(protocol.Datagram{Type: protocol.TypeKeepAlive, Data: hello})
	ch := read()
	digest := protocol.AuthDigest(ch.Data, password)
	write(protocol.Datagram{Type: protocol.TypeAuthentication, Data: digest[:]})
	if d := read(); d.Type != protocol.TypeKeepAlive {
		t.Fatalf("login: %v", d)
	}
	return conn
}

var _ = context.Background
