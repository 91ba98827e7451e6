package testclient

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient/pushsim"
)

// testPhone is a phone on f with fresh keys, started, whose OnDatagram calls are recorded.
type testPhone struct {
	*Phone
	keys *PushKeyPair
	s    *fakeSession // the session Start opened

	mu   sync.Mutex
	seen []protocol.Datagram // by OnDatagram
}

func startPhone(t *testing.T, f *fakeBroker, reattach bool) *testPhone {
	t.Helper()
	tp := &testPhone{keys: generateKeys(t)}
	tp.Phone = NewPhone(PhoneConfig{
		Client:   Config{URL: f.url(), ID: alice, Password: password, KeepAlive: -1},
		Attach:   AttachOptions{URL: tokenURL, Token: "fcm-device", Keys: tp.keys},
		Reattach: reattach,
		OnDatagram: func(d protocol.Datagram) {
			tp.mu.Lock()
			tp.seen = append(tp.seen, d)
			tp.mu.Unlock()
		},
	})
	t.Cleanup(func() { tp.Close() })
	if err := tp.Start(testContext(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	tp.s = f.next()
	if d := tp.s.expect(protocol.TypeTerminalAttach); d.Number != 2 {
		t.Errorf("attach number %d, want 2", d.Number)
	}
	return tp
}

func (tp *testPhone) onDatagram() []protocol.Datagram {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]protocol.Datagram(nil), tp.seen...)
}

func pushData(typ, enc string, body []byte) map[string]string {
	m := map[string]string{"type": typ}
	if body != nil {
		m["enc"], m["body"] = enc, base64.RawURLEncoding.EncodeToString(body)
	}
	return m
}

func seal(t *testing.T, keys *PushKeyPair, d protocol.Datagram) []byte {
	t.Helper()
	body, err := protocol.Seal(keys.Public(), d.MustEncode())
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func wakeupDatagram(pending uint32) protocol.Datagram {
	return protocol.Datagram{Type: protocol.TypeTerminalWakeup, Data: protocol.EncodeU32(pending)}
}

// awaitAck reads s until a DELIVERY_ACK of seq, skipping statuses and lower acks.
func awaitAck(t *testing.T, s *fakeSession, seq uint32) {
	t.Helper()
	for {
		d := s.recv(true)
		switch d.Type {
		case protocol.TypeMessageStatus:
		case protocol.TypeDeliveryAck:
			if got, _ := protocol.DecodeU32("ack", d.Data); got == seq {
				return
			} else if got > seq {
				t.Fatalf("ack %d, want %d", got, seq)
			}
		default:
			t.Fatalf("fake broker got %s while waiting for ack %d", d, seq)
		}
	}
}

// sameDatagrams compares datagrams, numbers only for stored deliveries: the fake numbers the
// others with its own counter.
func sameDatagrams(a, b []protocol.Datagram) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		stored := a[i].Flags&protocol.FlagBuffering != 0
		if a[i].Type != b[i].Type || a[i].Flags != b[i].Flags || stored && a[i].Number != b[i].Number || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// checkReceived waits for len(want) datagrams and compares Received and the OnDatagram calls.
func checkReceived(t *testing.T, tp *testPhone, want ...protocol.Datagram) {
	t.Helper()
	if err := tp.WaitReceived(testContext(t), len(want)); err != nil {
		t.Fatalf("WaitReceived: %v; have %v", err, tp.Received())
	}
	if got := tp.Received(); !sameDatagrams(got, want) {
		t.Errorf("Received = %v, want %v", got, want)
	}
	if got := tp.onDatagram(); !sameDatagrams(got, want) {
		t.Errorf("OnDatagram saw %v, want %v", got, want)
	}
}

func TestPhoneSealedPushThenReplay(t *testing.T) {
	f := newPushFakeBroker(t)
	tp := startPhone(t, f, false)
	ctx := testContext(t)
	if err := tp.GoIdle(ctx, true); err != nil {
		t.Fatalf("GoIdle: %v", err)
	}
	tp.s.expect(protocol.TypeTerminalIdle)
	if err := tp.s.ended(); CloseCode(err) != -1 {
		t.Errorf("suspended app's socket ended with %v, want no close frame", err)
	}

	// Two texts are stored while the phone sleeps; the first is pushed sealed.
	d1 := f.store(alice, protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "one")})
	d2 := f.store(alice, protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "two")})
	old := tp.Client()
	tp.HandlePush(pushsim.Push{Platform: pushsim.PlatformFCM, Data: pushData("data", "aes128gcm", seal(t, tp.keys, d1))})

	s := f.next()
	if d := s.recv(false); d.Type != protocol.TypeTerminalWakeup || len(d.Data) != 0 || d.Number != 2 {
		t.Fatalf("first datagram after the push: %s, want an empty TERMINAL_WAKEUP number 2", d)
	}
	awaitAck(t, s, d2.Number) // the replayed d1 and d2 are acknowledged
	if left := f.outbox(alice); len(left) != 0 {
		t.Errorf("outbox after the acks: %v", left)
	}
	if tp.Client() == old || tp.Client().Err() != nil {
		t.Error("the phone did not switch to a live session")
	}

	// A live datagram after the replay proves the replayed d1 was dropped, not just late.
	live := protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, 91, protocol.OptionGroup, "live")}
	s.write(live)
	checkReceived(t, tp, d1, d2, live)

	pushes := tp.Pushes()
	if len(pushes) != 1 {
		t.Fatalf("Pushes = %+v", pushes)
	}
	p := pushes[0]
	if p.Type != "data" || p.Enc != "aes128gcm" || p.Err != nil || p.ReconnectErr != nil ||
		p.Datagram == nil || !sameDatagrams([]protocol.Datagram{*p.Datagram}, []protocol.Datagram{d1}) {
		t.Errorf("push = %+v", p)
	}
}

func TestPhoneWakeOnlyPush(t *testing.T) {
	for _, tc := range []struct {
		name string
		data map[string]string
	}{
		{"sealed wakeup", nil}, // filled in below: needs the phone's keys
		{"unsealed wakeup", pushData("wake", "none", wakeupDatagram(1).MustEncode())},
		{"no body", pushData("wake", "", nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newPushFakeBroker(t)
			tp := startPhone(t, f, true)
			if err := tp.GoIdle(testContext(t), false); err != nil { // the socket stays open
				t.Fatalf("GoIdle: %v", err)
			}
			tp.s.expect(protocol.TypeTerminalIdle)
			d1 := f.store(alice, protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "big")})
			data := tc.data
			if data == nil {
				data = pushData("wake", "aes128gcm", seal(t, tp.keys, wakeupDatagram(1)))
			}
			// An APNs push: the same fields, from the "rewind" dictionary.
			tp.HandlePush(pushsim.Push{Platform: pushsim.PlatformAPNs, Data: data})

			s := f.next()
			if d := s.recv(false); d.Type != protocol.TypeTerminalWakeup {
				t.Fatalf("first datagram %s, want TERMINAL_WAKEUP", d)
			}
			// Then the re-attach (Reattach), the status and the ack, in whatever order.
			for attached, acked := false, false; !attached || !acked; {
				switch d := s.recv(true); d.Type {
				case protocol.TypeTerminalAttach:
					attached = true
				case protocol.TypeDeliveryAck:
					seq, _ := protocol.DecodeU32("ack", d.Data)
					acked = seq == d1.Number
				case protocol.TypeMessageStatus:
				default:
					t.Fatalf("fake broker got %s", d)
				}
			}
			if err := tp.s.ended(); err == nil {
				t.Error("the old socket is still open")
			}
			checkReceived(t, tp, d1)
			p := tp.Pushes()[0]
			if p.Err != nil || p.ReconnectErr != nil || p.Type != "wake" {
				t.Fatalf("push = %+v", p)
			}
			if (p.Datagram == nil) != (data["body"] == "") || p.Datagram != nil && p.Datagram.Type != protocol.TypeTerminalWakeup {
				t.Errorf("push datagram = %v", p.Datagram)
			}
		})
	}
}

func TestPhoneActiveDoesNotReconnect(t *testing.T) {
	f := newPushFakeBroker(t)
	tp := startPhone(t, f, false)
	c := tp.Client()
	// An unsealed data push (legacy terminals, when the operator allows it) to a phone that is
	// in the foreground: the message is taken from the push, the session stays.
	d1 := f.store(alice, protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "hi")})
	tp.HandlePush(pushsim.Push{Platform: pushsim.PlatformFCM, Data: pushData("data", "none", d1.MustEncode())})
	if tp.Client() != c {
		t.Error("an active phone reconnected")
	}
	// The broker also delivers it on the session: it is not received twice.
	tp.s.write(d1)
	live := protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, 91, protocol.OptionGroup, "live")}
	tp.s.write(live)
	checkReceived(t, tp, d1, live)
	awaitAck(t, tp.s, d1.Number)
}

func TestPhoneBadPushes(t *testing.T) {
	f := newPushFakeBroker(t)
	tp := startPhone(t, f, false)
	textDatagram := protocol.Datagram{Type: protocol.TypeMessageText, Flags: protocol.FlagBuffering, Number: 1,
		Data: text(t, bob, alice, protocol.OptionPrivate, "x")}
	padded := pushData("data", "aes128gcm", seal(t, tp.keys, textDatagram))
	padded["body"] += strings.Repeat("=", (4-len(padded["body"])%4)%4) + "="
	for name, data := range map[string]map[string]string{
		"no type":             {},
		"unknown type":        pushData("call", "none", textDatagram.MustEncode()),
		"data without body":   pushData("data", "", nil),
		"padded base64":       padded,
		"unknown enc":         pushData("data", "aes256gcm", textDatagram.MustEncode()),
		"other phone's keys":  pushData("data", "aes128gcm", seal(t, generateKeys(t), textDatagram)),
		"not a datagram":      pushData("data", "none", []byte("REWIND01 but no")),
		"wake with a message": pushData("wake", "none", textDatagram.MustEncode()),
		"data with a wakeup":  pushData("data", "none", wakeupDatagram(2).MustEncode()),
		"short wakeup":        pushData("wake", "none", protocol.Datagram{Type: protocol.TypeTerminalWakeup}.MustEncode()),
	} {
		tp.HandlePush(pushsim.Push{Data: data})
		ps := tp.Pushes()
		if p := ps[len(ps)-1]; !errors.Is(p.Err, ErrBadPush) || p.Datagram != nil {
			t.Errorf("%s: push = %+v, want ErrBadPush", name, p)
		}
	}
	if got := tp.Received(); len(got) != 0 {
		t.Errorf("bad pushes delivered %v", got)
	}
}

func TestPhoneNoKeysCannotOpen(t *testing.T) {
	f := newPushFakeBroker(t)
	p := NewPhone(PhoneConfig{Client: Config{URL: f.url(), ID: alice, Password: password, KeepAlive: -1},
		Attach: AttachOptions{URL: tokenURL, Token: "t", Legacy: true}})
	defer p.Close()
	if err := p.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if d := f.next().expect(protocol.TypeTerminalAttach); string(d.Data) != tokenURL+" t" {
		t.Errorf("attach %q", d.Data)
	}
	p.HandlePush(pushsim.Push{Data: pushData("data", "aes128gcm", []byte("sealed"))})
	if err := p.Pushes()[0].Err; !errors.Is(err, ErrBadPush) || !strings.Contains(err.Error(), "no keys") {
		t.Errorf("Err = %v", err)
	}
}

func TestPhoneClose(t *testing.T) {
	f := newPushFakeBroker(t)
	tp := startPhone(t, f, false)
	done := make(chan error, 1)
	go func() { done <- tp.WaitReceived(t.Context(), 1) }()
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	tp.s.expect(protocol.TypeClose)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("WaitReceived after Close = %v", err)
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := tp.GoIdle(t.Context(), false); !errors.Is(err, ErrClosed) {
		t.Errorf("GoIdle after Close = %v", err)
	}
	tp.HandlePush(pushsim.Push{Data: pushData("wake", "", nil)})
	if p := tp.Pushes()[0]; !errors.Is(p.ReconnectErr, ErrClosed) {
		t.Errorf("push after Close: %+v", p)
	}
}

// The phone as pushsim's push handler: a real FCM messages:send request reaches it.
func TestPhoneWithPushsimFCM(t *testing.T) {
	f := newPushFakeBroker(t)
	tp := startPhone(t, f, false)
	fcm := pushsim.NewFCM()
	defer fcm.Close()
	device := fcm.RegisterDevice("rewind-test")
	fcm.OnPush(device, tp.HandlePush)
	if err := tp.GoIdle(testContext(t), true); err != nil {
		t.Fatal(err)
	}

	d1 := f.store(alice, protocol.Datagram{Type: protocol.TypeMessageText, Data: text(t, bob, alice, protocol.OptionPrivate, "via fcm")})
	msg, _ := json.Marshal(map[string]any{"message": map[string]any{
		"token":   device,
		"data":    pushData("data", "aes128gcm", seal(t, tp.keys, d1)),
		"android": map[string]any{"priority": "high", "ttl": "60s", "collapse_key": "rewind"},
	}})
	req, _ := http.NewRequestWithContext(testContext(t), http.MethodPost,
		fmt.Sprintf("%s/v1/projects/%s/messages:send", fcm.URL(), "rewind-test"), bytes.NewReader(msg))
	req.Header.Set("Authorization", "Bearer "+fcm.Issue("rewind-test"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := fcm.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("FCM answered %d", resp.StatusCode)
	}
	checkReceived(t, tp, d1)
	s := f.next()
	s.expect(protocol.TypeTerminalWakeup)
	awaitAck(t, s, d1.Number)
	if p := tp.Pushes()[0]; p.Err != nil || p.Push.DeviceToken != device {
		t.Errorf("push = %+v", p)
	}
}
