package testclient

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rewind-broker/rewind/protocol"
)

// fakeBroker is the smallest Rewind server that performs the session handshake of
// PROTOCOL.md §3. Each authenticated session is handed to the test as a fakeSession.
type fakeBroker struct {
	t        *testing.T
	srv      *httptest.Server
	password string
	sessions chan *fakeSession
	refused  chan *fakeSession // sessions that failed authentication, after the 4401 close

	// Routing mode (load tests): set before the first session. Passwords come from passwordFor,
	// sessions are not handed to the test, and private texts are delivered to their destination
	// as stored deliveries (flag Buffering, per-terminal sequence).
	passwordFor func(id uint32) string
	routeMu     sync.Mutex
	byID        map[uint32]*fakeSession
	acks        map[uint32]uint32 // highest DELIVERY_ACK per terminal

	// Push mode (newPushFakeBroker), set before the server starts: TERMINAL_ATTACH, IDLE and
	// DETACH are answered with their empty reply (and still handed to the test), and each
	// terminal has an outbox, replayed after every authentication and trimmed by DELIVERY_ACK.
	pushMode  bool
	storeMu   sync.Mutex
	stored    map[uint32][]protocol.Datagram // unacknowledged, in sequence order
	storedSeq map[uint32]uint32              // last outbox sequence per terminal
}

// fakeSession is the broker's side of one session, driven by the test.
type fakeSession struct {
	t         *testing.T
	ws        *websocket.Conn
	hello     protocol.Datagram
	challenge []byte
	auth      protocol.Datagram
	in        chan protocol.Datagram // every datagram received after authentication
	readErr   chan error             // the error that ended the fake's reader
	echo      bool                   // answer empty KEEP_ALIVEs (set before the session starts)
	id        uint32
	router    *fakeBroker // routing mode
	pushes    *fakeBroker // push mode
	outboxSeq uint32      // routing mode, guarded by router.routeMu

	mu  sync.Mutex // serialises writes and guards seq
	seq uint32
}

const testWait = 10 * time.Second // bounds every wait in these tests; none is a sleep

func newFakeBroker(t *testing.T, password string, echo bool) *fakeBroker {
	t.Helper()
	return startFakeBroker(t, &fakeBroker{t: t, password: password}, echo)
}

// newPushFakeBroker is a fake broker in push mode (see fakeBroker.pushMode) that echoes
// keep-alives.
func newPushFakeBroker(t *testing.T) *fakeBroker {
	t.Helper()
	return startFakeBroker(t, &fakeBroker{t: t, password: password, pushMode: true,
		stored: make(map[uint32][]protocol.Datagram), storedSeq: make(map[uint32]uint32)}, true)
}

func startFakeBroker(t *testing.T, f *fakeBroker, echo bool) *fakeBroker {
	f.sessions, f.refused = make(chan *fakeSession, 8), make(chan *fakeSession, 8)
	var wg sync.WaitGroup
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		s := &fakeSession{t: t, ws: ws, in: make(chan protocol.Datagram, 1024), readErr: make(chan error, 1), echo: echo}
		wg.Add(1)
		t.Cleanup(func() { ws.CloseNow(); wg.Wait() })
		defer wg.Done()
		ctx, cancel := context.WithTimeout(r.Context(), testWait)
		defer cancel()
		if s.hello, err = s.readRaw(ctx); err != nil {
			return
		}
		s.challenge = bytes.Repeat([]byte{0xc7}, protocol.ChallengeSize)
		s.challenge[0] = byte(len(f.password)) // any fixed value will do for a fake
		s.write(protocol.Datagram{Type: protocol.TypeChallenge, Data: s.challenge})
		if s.auth, err = s.readRaw(ctx); err != nil {
			return
		}
		pw := f.password
		if v, err := protocol.DecodeVersionData(s.hello.Data); err == nil {
			s.id = v.Number
			if f.passwordFor != nil {
				pw = f.passwordFor(v.Number)
			}
		}
		want := protocol.AuthDigest(s.challenge, pw)
		if !bytes.Equal(s.auth.Data, want[:]) {
			s.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{
				Code: protocol.CodeUnauthorized, Offending: protocol.TypeAuthentication, Reason: "authentication failed"}.Encode()})
			ws.Close(4401, "authentication failed")
			f.refused <- s
			return
		}
		s.write(protocol.Datagram{Type: protocol.TypeKeepAlive})
		if f.pushMode {
			s.pushes = f
			for _, d := range f.outbox(s.id) {
				s.write(d)
			}
		}
		if f.passwordFor != nil {
			s.router = f
			f.routeMu.Lock()
			f.byID[s.id] = s
			f.routeMu.Unlock()
		} else {
			f.sessions <- s
		}
		s.readLoop()
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// newRoutingFakeBroker is a fake broker that authenticates every terminal with passwordFor
// and routes private texts between its sessions.
func newRoutingFakeBroker(t *testing.T, passwordFor func(uint32) string) *fakeBroker {
	f := newFakeBroker(t, "", true)
	f.passwordFor = passwordFor
	f.byID = make(map[uint32]*fakeSession)
	f.acks = make(map[uint32]uint32)
	return f
}

func (f *fakeBroker) route(from *fakeSession, d protocol.Datagram) {
	switch d.Type {
	case protocol.TypeDeliveryAck:
		seq, _ := protocol.DecodeU32("ack", d.Data)
		f.routeMu.Lock()
		f.acks[from.id] = max(f.acks[from.id], seq)
		f.routeMu.Unlock()
	case protocol.TypeMessageText:
		_, dst, _, err := protocol.TextMessageHeader(d.Data)
		if err != nil {
			return
		}
		f.routeMu.Lock()
		to := f.byID[dst]
		var seq uint32
		if to != nil {
			to.outboxSeq++
			seq = to.outboxSeq
		}
		f.routeMu.Unlock()
		if to == nil {
			from.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{
				Code: protocol.CodeNotFound, Offending: d.Type, Reason: "unknown destination"}.Encode()})
			return
		}
		to.write(protocol.Datagram{Type: d.Type, Flags: protocol.FlagBuffering, Number: seq, Data: d.Data})
	}
}

// store appends d to terminal id's outbox (push mode) and returns it as the broker delivers
// it: flag Buffering, Number the next outbox sequence. Nothing is sent.
func (f *fakeBroker) store(id uint32, d protocol.Datagram) protocol.Datagram {
	f.storeMu.Lock()
	defer f.storeMu.Unlock()
	f.storedSeq[id]++
	d.Flags |= protocol.FlagBuffering
	d.Number = f.storedSeq[id]
	f.stored[id] = append(f.stored[id], d)
	return d
}

// outbox returns terminal id's unacknowledged stored datagrams, in order.
func (f *fakeBroker) outbox(id uint32) []protocol.Datagram {
	f.storeMu.Lock()
	defer f.storeMu.Unlock()
	return slices.Clone(f.stored[id])
}

// acknowledge drops terminal id's stored datagrams up to seq.
func (f *fakeBroker) acknowledge(id, seq uint32) {
	f.storeMu.Lock()
	defer f.storeMu.Unlock()
	f.stored[id] = slices.DeleteFunc(f.stored[id], func(d protocol.Datagram) bool { return d.Number <= seq })
}

func (f *fakeBroker) url() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/rewind" }

// next returns the next authenticated session.
func (f *fakeBroker) next() *fakeSession {
	f.t.Helper()
	select {
	case s := <-f.sessions:
		return s
	case <-time.After(testWait):
		f.t.Fatal("no session reached the fake broker")
		return nil
	}
}

func (s *fakeSession) readRaw(ctx context.Context) (protocol.Datagram, error) {
	typ, msg, err := s.ws.Read(ctx)
	if err != nil {
		return protocol.Datagram{}, err
	}
	if typ != websocket.MessageBinary {
		s.t.Errorf("fake broker: got a %v WebSocket message", typ)
	}
	d, err := protocol.Decode(msg)
	if err != nil {
		s.t.Errorf("fake broker: client sent a malformed datagram: %v", err)
	}
	return d, err
}

func (s *fakeSession) readLoop() {
	for {
		d, err := s.readRaw(context.Background())
		if err != nil {
			s.readErr <- err
			close(s.in)
			return
		}
		if s.echo && d.Type == protocol.TypeKeepAlive && len(d.Data) == 0 {
			s.write(protocol.Datagram{Type: protocol.TypeKeepAlive})
		}
		if s.router != nil {
			s.router.route(s, d)
			continue
		}
		if s.pushes != nil {
			switch d.Type {
			case protocol.TypeTerminalAttach, protocol.TypeTerminalIdle, protocol.TypeTerminalDetach:
				s.write(protocol.Datagram{Type: d.Type})
			case protocol.TypeDeliveryAck:
				if seq, err := protocol.DecodeU32("ack", d.Data); err == nil {
					s.pushes.acknowledge(s.id, seq)
				}
			}
		}
		s.in <- d
	}
}

// write sends d with the fake broker's own sequence counter unless d.Flags has Buffering.
func (s *fakeSession) write(d protocol.Datagram) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.Flags&protocol.FlagBuffering == 0 {
		d.Number = s.seq
		s.seq++
	}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := s.ws.Write(ctx, websocket.MessageBinary, d.MustEncode()); err != nil && s.router == nil {
		s.t.Errorf("fake broker: write %s: %v", d.Type, err)
	}
}

// recv returns the next datagram from the client; with skipKeepAlive, keep-alives are skipped.
func (s *fakeSession) recv(skipKeepAlive bool) protocol.Datagram {
	s.t.Helper()
	timeout := time.After(testWait)
	for {
		select {
		case d, ok := <-s.in:
			if !ok {
				s.t.Fatalf("fake broker: connection ended: %v", <-s.readErr)
			}
			if skipKeepAlive && d.Type == protocol.TypeKeepAlive {
				continue
			}
			return d
		case <-timeout:
			s.t.Fatal("fake broker: nothing received")
		}
	}
}

// expect returns the next datagram other than a keep-alive and checks its type.
func (s *fakeSession) expect(typ protocol.Type) protocol.Datagram {
	s.t.Helper()
	d := s.recv(true)
	if d.Type != typ {
		s.t.Fatalf("fake broker: got %s, want %s", d, typ)
	}
	return d
}

// ended waits for the client's side to end and returns the fake reader's error.
func (s *fakeSession) ended() error {
	s.t.Helper()
	timeout := time.After(testWait)
	for {
		select {
		case _, ok := <-s.in:
			if !ok {
				return <-s.readErr
			}
		case <-timeout:
			s.t.Fatal("fake broker: connection did not end")
			return nil
		}
	}
}

func text(t *testing.T, from, to uint32, option uint16, body string) []byte {
	t.Helper()
	b, err := protocol.TextMessage{Source: from, Destination: to, Option: option, Text: body}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
